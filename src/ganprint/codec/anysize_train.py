"""Training the any-size codec: one readable loop over photos cropped at many sizes, exact resume.

Each step takes B crops of one native size S (drawn per step) from a pool of photos held in memory at
several scales, fingerprints them the way `AnySizeCodec.embed` does (resize to W, residual, resize
back, add, round to 8 bits), then attacks them as the world does, at native size:
    rotation (a few degrees) -> crop (any position, 20-100% of the area) -> downscale (to 25-100%)
    -> one of noise / blur / brightness / contrast / saturation (ganprint.augment)
    -> (`grey_probability`) the channels' mean, as a greyscale copy stores it
    -> real JPEG or WebP at quality 40-95 (straight-through: exact forward, identity backward)
and reads them at the working size a crop calls for (W * crop side, jittered by +-9%: the spacing of
the decoder's scale search), with the tile grid's shift known from the crop position. The attacks
start once the clean bits are read (smoothed accuracy `attack_accuracy`) and ramp in. The loss is
BCE on the bits, plus (`sync_weight`) the squared logits of readings at a wrong shift or scale; image
fidelity is fixed by construction (the residual's RMS), which the FidelitySchedule anneals from loud
to the target as accuracy allows.
All randomness comes from generators seeded by (seed, step), so a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from .. import checkpoint
from ..data import IMAGE_EXTENSIONS, load_image, to_rgb
from ..device import resolve_device
from ..errors import GanprintError
from ..runs import StatsLog, new_run_dir, write_options
from ..visualize import residual_grid, save_png
from .anysize import DECODER_STRIDE, AnySizeConfig, to_native, to_working
from .anysize_codec import AnySizeCodec
from .schedule import FidelitySchedule

if TYPE_CHECKING:
    from ..augment import Augmenter

DEFAULT_AUGMENT = "noise=0.04,blur=1.2,brightness=0.35,contrast=0.35,saturation=1"
NATIVE_SIZES = (128, 160, 192, 256, 320)
MIN_ATTACKED = 64  # no attack leaves an image smaller than the codec's smallest side


@dataclass
class AnySizeTrainOptions:
    data_dir: str  # folder of training photos (any sizes; read recursively)
    output_dir: str = "runs"
    arch: str = "conv"  # "conv" (codec-32's layers over tiles; can start from a 32-px codec) or "unet"
    fingerprint_length: int = 100
    working_resolution: int = 128
    tile: int = 32
    channels: int = 64
    message_channels: int = 8
    residual_rms: float = 0.0065  # target RMS (PSNR ~ 43.7 dB)
    start_rms: float = 0.05
    anneal_accuracy: float = 0.96  # smoothed (attacked) accuracy that lowers the RMS one step
    anneal_factor: float = 0.88
    batch_size: int = 16
    steps: int = 6000
    lr: float = 1e-3
    lr_final_factor: float = 0.1
    augment: str = DEFAULT_AUGMENT
    attack_accuracy: float = 0.9  # smoothed clean accuracy that starts the attacks (ramped in over augment_ramp)
    augment_ramp: int = 1500
    crop_probability: float = 0.5
    min_crop_area: float = 0.2
    downscale_probability: float = 0.35
    compress_probability: float = 0.4  # real JPEG (or WebP, 1 in 5) at quality 40-95, straight-through
    rotate_probability: float = 0.15
    grey_probability: float = 0.0  # per image: read its greyscale copy (the residual must live in luminance too)
    max_rotation: float = 6.0
    scale_jitter: float = 0.09
    sync_weight: float = 0.05  # weight of the loss that keeps readings at a wrong tile shift or scale unconfident
    eval_every: int = 250
    snapshot_every: int = 250
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    init: str | None = None  # start from this any-size codec's weights (name or folder): continue a shipped model

    def codec_config(self) -> AnySizeConfig:
        return AnySizeConfig(
            arch=self.arch, fingerprint_length=self.fingerprint_length, working_resolution=self.working_resolution,
            tile=self.tile, channels=self.channels, message_channels=self.message_channels,
            residual_rms=self.residual_rms,
        ).validate()  # fmt: skip


class PhotoPool:
    """Training photos in memory as uint8 (3,H,W) tensors at several scales (long side <= 2048, then
    halved while the short side stays >= 128): a crop of S px covers anything from a whole small
    photo to a patch of texture."""

    def __init__(self, folder: str | Path, max_side: int = 2048):
        root = Path(folder)
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not paths:
            raise GanprintError(f"{folder}: no training images found (PNG, JPEG, WebP, BMP)")
        self.levels: list[torch.Tensor] = []
        for path in paths:
            im = to_rgb(load_image(path))
            scale = min(1.0, max_side / max(im.size))
            while min(im.size) * scale >= 128:
                size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
                level = im.resize(size, Image.Resampling.LANCZOS) if scale < 1 else im
                self.levels.append(torch.from_numpy(np.asarray(level, dtype=np.uint8).copy()).permute(2, 0, 1))
                scale /= 2
        self.photos = len(paths)
        self.largest_crop = max(min(t.shape[-2:]) for t in self.levels)

    def crops(self, n: int, size: int, g: torch.Generator) -> torch.Tensor:
        """n random crops (n,3,size,size) in [0,1], flipped at random."""
        usable = [t for t in self.levels if min(t.shape[-2:]) >= size]
        picks = torch.randint(0, len(usable), (n,), generator=g).tolist()
        ys, xs, flips = torch.rand(n, generator=g), torch.rand(n, generator=g), torch.rand(n, generator=g) < 0.5
        out = []
        for i, k in enumerate(picks):
            t = usable[k]
            y = int(ys[i] * (t.shape[1] - size + 1))
            x = int(xs[i] * (t.shape[2] - size + 1))
            c = t[:, y : y + size, x : x + size]
            out.append(c.flip(-1) if flips[i] else c)
        return torch.stack(out).float() / 255


@dataclass
class Attack:
    """One step's geometric attack (shared by the batch; crop positions per image)."""

    angle: torch.Tensor  # (B,) degrees
    crop_side: float  # share of the side kept
    offsets: torch.Tensor  # (B,2) crop position in [0,1)
    downscale: float  # share of the cropped size kept
    jitter: float  # decode size factor
    compress: list[tuple[str, int] | None]  # per image: (format, quality) or None
    grey: torch.Tensor | None = None  # (B,) bool: read the image's greyscale copy


def draw_attack(o: AnySizeTrainOptions, n: int, g: torch.Generator, ramp: float = 1.0) -> Attack:
    """Geometric attacks and compression come in with `ramp` (0 -> 1): the codec first learns to
    hide and read bits at all, then to survive the world (from the start, it does not learn)."""
    u = torch.rand(6, generator=g).tolist()
    angle = (torch.rand(n, generator=g) * 2 - 1) * o.max_rotation
    offsets = torch.rand(n, 2, generator=g)
    if u[0] >= o.rotate_probability * ramp:
        angle = torch.zeros(n)
    side = math.sqrt(o.min_crop_area + (1 - o.min_crop_area) * u[2]) if u[1] < o.crop_probability * ramp else 1.0
    down = 0.25 + 0.75 * u[4] if u[3] < o.downscale_probability * ramp else 1.0
    jitter = 1 + o.scale_jitter * (2 * u[5] - 1)
    c = torch.rand(n, 3, generator=g).tolist()
    compress = [
        ("WEBP" if webp < 0.2 else "JPEG", int(40 + 55 * q)) if p < o.compress_probability * ramp else None
        for p, webp, q in c
    ]
    # drawn last and only when asked, so runs without greyscale views keep every other draw
    grey = torch.rand(n, generator=g) < o.grey_probability * ramp if o.grey_probability > 0 else None
    return Attack(angle, side, offsets, down, jitter, compress, grey)


def attack_and_read(codec: AnySizeCodec, marked: torch.Tensor, attack: Attack, augmenter: Augmenter | None,
                    step: int, g: torch.Generator, sync: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """Attack native-size marked images (B,3,S,S) and decode them with the true tile shift; with `sync`,
    also the logits of readings at wrong shifts and scales (to be kept near 0)."""
    n, _, s, _ = marked.shape
    w = codec.config.working_resolution
    x = marked
    if bool((attack.angle != 0).any()):
        import kornia  # here: the CLI imports this module's options, and kornia takes seconds to import

        x = kornia.geometry.transform.rotate(x, attack.angle.to(x), padding_mode="reflection")
    side = max(MIN_ATTACKED, round(s * attack.crop_side))
    oy = (attack.offsets[:, 0] * (s - side + 1)).long().clamp(0, s - side)
    ox = (attack.offsets[:, 1] * (s - side + 1)).long().clamp(0, s - side)
    if side < s:
        x = torch.stack([x[i, :, oy[i] : oy[i] + side, ox[i] : ox[i] + side] for i in range(n)])
    if attack.downscale < 1:
        small = max(MIN_ATTACKED, round(side * attack.downscale))
        x = F.interpolate(x, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
    if augmenter is not None:
        x = augmenter(x, step, g)
    if attack.grey is not None and bool(attack.grey.any()):  # image_modes: a grey copy is the channels' mean
        x = torch.where(attack.grey.to(x.device).view(-1, 1, 1, 1), x.mean(1, keepdim=True).expand_as(x), x)
    if any(attack.compress):
        # real codecs forward, identity backward: the decoder learns the true artefacts, the encoder
        # gets the gradient of a perturbation it cannot see through (cheaper than a differentiable JPEG)
        coded = torch.stack([
            compress_real(x[i].detach().cpu(), *c).to(x) if c else x[i].detach() for i, c in enumerate(attack.compress)
        ])  # fmt: skip
        x = x + (coded - x).detach()
    decode_size = max(2 * DECODER_STRIDE, round(w * side / s * attack.jitter))
    x = to_working(x, decode_size)
    cell = DECODER_STRIDE * s / w  # native px per decoder cell
    shift_y = torch.round(oy.float() / cell).long() % codec.decoder.cells
    shift_x = torch.round(ox.float() / cell).long() % codec.decoder.cells
    shift_y, shift_x = shift_y.to(x.device), shift_x.to(x.device)
    folded = codec.decoder.fold(x)
    logits = codec.decoder.read(folded, shift_y, shift_x)
    if not sync:
        return logits, None
    # readings the decoder's search must not prefer: the right scale at a wrong tile shift, and a
    # wrong scale (x0.7 or x1.4) at any shift; drawn from their own generator so that runs with and
    # without this loss share every other draw
    gs = torch.Generator().manual_seed(step * 7 + 3)
    p = codec.decoder.cells
    wrong = torch.randint(1, p * p, (n,), generator=gs).to(x.device)
    off_y, off_x = wrong // p, wrong % p
    wrong_shift = codec.decoder.read(folded, (shift_y + off_y) % p, (shift_x + off_x) % p)
    factor = 0.7 if bool(torch.rand(1, generator=gs) < 0.5) else 1.4
    resized = to_working(x, max(2 * DECODER_STRIDE, round(decode_size * factor)))
    any_shift = torch.randint(0, p, (2, n), generator=gs).to(x.device)
    wrong_scale = codec.decoder.read(codec.decoder.fold(resized), any_shift[0], any_shift[1])
    return logits, torch.cat([wrong_shift, wrong_scale])


def embed_native(codec: AnySizeCodec, x: torch.Tensor, bits: torch.Tensor, rms: float | None) -> torch.Tensor:
    """What AnySizeCodec.embed computes, batched and differentiable (for training)."""
    r = codec.encoder(to_working(x, codec.config.working_resolution), bits, rms=rms)
    return (x + to_native(r, *x.shape[-2:])).clamp(0, 1)


def compress_real(t: torch.Tensor, fmt: str, quality: int) -> torch.Tensor:
    """(3,H,W) in [0,1] through a real JPEG/WebP file at `quality` (PIL, 4:2:0 for JPEG)."""
    arr = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, quality=quality)
    buf.seek(0)
    return torch.from_numpy(np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)


@torch.no_grad()
def evaluate(codec: AnySizeCodec, images: torch.Tensor, rms: float, seed: int) -> dict[str, float]:
    """Bit accuracy of the inference path (scale and shift search) on held-out crops: 8-bit clean,
    real JPEG 50, centre crop keeping 50% of the area, greyscale copy; the clean images' accuracy; PSNR."""
    codec.eval()
    g = torch.Generator().manual_seed(seed + 12345)
    bits = torch.randint(0, 2, (images.shape[0], codec.config.fingerprint_length), generator=g).float()
    marked = torch.round(embed_native(codec, images, bits, rms) * 255) / 255
    s = images.shape[-1]
    side = round(s * math.sqrt(0.5))
    off = (s - side) // 2
    views = {
        "clean": list(marked),
        "jpeg50": [compress_real(m, "JPEG", 50) for m in marked],
        "crop50": list(marked[:, :, off : off + side, off : off + side]),
        "grey": list(torch.round(marked.mean(1, keepdim=True).expand_as(marked) * 255) / 255),
        "unmarked": list(images),
    }
    stats = {}
    for name, imgs in views.items():
        acc = ((codec.decode_logits(imgs) > 0).float() == bits).float().mean().item()
        stats[f"val/bit_accuracy_{name}"] = acc
    mse = (marked - images).pow(2).mean((1, 2, 3)).clamp_min(1e-10)
    stats["val/psnr"] = (10 * torch.log10(1 / mse)).mean().item()
    codec.train()
    return stats


def load_initial_weights(codec: AnySizeCodec, init: str) -> None:
    """Start from an any-size codec of the same networks, or, for the conv architecture, from a 32-px
    ganprint codec (codec-32, codec-32-immunized): its layers are the conv architecture's, tile by tile."""
    from .importing import is_anysize_model, load_codec

    start = load_codec(init)
    if is_anysize_model(init):
        settings = {"residual_rms": 0, "search_null": None, "canonical_bonus": 0, "confident_score": 0,
                    "flat_texture": None, "flat_energy_floor": 1}  # how the weights are used, not the weights
        same = start.config.to_dict() | settings == codec.config.to_dict() | settings
    else:
        c = start.config
        same = (codec.config.arch == "conv" and c.arch == "ganprint" and c.resolution == codec.config.tile
                and c.fingerprint_length == codec.config.fingerprint_length and c.channels == codec.config.channels
                and c.message_channels == codec.config.message_channels)  # fmt: skip
    if not same:
        raise GanprintError(f"--init {init}: its networks differ from this run's options")
    codec.load_state_dict(start.state_dict())


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed + 1) * 1_000_003 + step)


def train_anysize(options: AnySizeTrainOptions, resume: str | Path | None = None) -> Path:
    """Train (or resume) an any-size codec; returns the run folder (`final/` holds the model)."""
    o = options
    config = o.codec_config()
    device = resolve_device(o.device)
    from ..augment import Augmenter

    augmenter = Augmenter.from_spec(o.augment, o.augment_ramp) if o.augment else None
    pool = PhotoPool(o.data_dir)
    torch.manual_seed(o.seed)
    codec = AnySizeCodec(config).to(device).train()
    if device.type == "cpu":  # oneDNN's convolutions run faster without a layout change per call
        codec = codec.to(memory_format=torch.channels_last)
    if o.init is not None and resume is None:
        load_initial_weights(codec, o.init)
    opt = torch.optim.Adam(codec.parameters(), lr=o.lr)
    schedule = FidelitySchedule(
        warmup_accuracy=o.attack_accuracy, start_rms=max(o.start_rms, o.residual_rms), target_rms=o.residual_rms,
        anneal_accuracy=o.anneal_accuracy, anneal_factor=o.anneal_factor,
    )  # fmt: skip
    start = 0
    if resume is not None:
        run_dir = Path(resume)
        state = checkpoint.load_training_checkpoint(run_dir / "checkpoint.pt")
        if state.get("kind") != "ganprint.codec-anysize.train" or state.get("config") != config.to_dict():
            raise GanprintError(f"{run_dir}: resume checkpoint is of another configuration than this run's options")
        checkpoint.load_state(codec, state["model"], str(run_dir / "checkpoint.pt"))
        opt.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start = int(state["step"])
    else:
        run_dir = new_run_dir(o.output_dir, f"codec-anysize-{o.working_resolution}w-{o.fingerprint_length}b")
    write_options(run_dir, {**dataclasses.asdict(o), "photos": pool.photos, "pool_levels": len(pool.levels)})
    log = StatsLog(run_dir)
    log.truncate_after(start)
    val_images = pool.crops(48, 256, torch.Generator().manual_seed(o.seed + 777))

    null_images = [c for size in (128, 256, 384) if size <= pool.largest_crop
                   for c in pool.crops(12, size, torch.Generator().manual_seed(o.seed + 99))]  # fmt: skip

    def save(step: int, final: bool = False) -> None:
        snap = AnySizeCodec(dataclasses.replace(config, residual_rms=float(schedule.rms))).to(device).eval()
        snap.load_state_dict(codec.state_dict())
        snap.config = dataclasses.replace(snap.config, search_null=snap.measure_search_null(null_images))
        snap.save_pretrained(run_dir / ("final" if final else f"snapshot-{step:06d}"))
        checkpoint.save_training_checkpoint(run_dir / "checkpoint.pt", {
            "kind": "ganprint.codec-anysize.train", "config": config.to_dict(), "step": step,
            "model": codec.state_dict(), "optimizer": opt.state_dict(), "schedule": schedule.state_dict(),
        })  # fmt: skip
        with torch.no_grad():
            x = val_images[:6].to(device)
            b = torch.randint(0, 2, (6, config.fingerprint_length), generator=_step_generator(o.seed, -1)).float()
            marked = torch.round(embed_native(codec, x, b.to(device), schedule.rms) * 255) / 255
            save_png(residual_grid(x, marked), run_dir / f"grid-{step:06d}.png")

    bar = tqdm(total=o.steps, initial=start, desc="codec-anysize train", unit="step", disable=not o.progress,
               dynamic_ncols=True)  # fmt: skip
    t0, step = time.time(), start
    for step in range(start + 1, o.steps + 1):
        g = _step_generator(o.seed, step)
        size = NATIVE_SIZES[int(torch.randint(0, len(NATIVE_SIZES), (1,), generator=g))]
        x = pool.crops(o.batch_size, size, g).to(device)
        bits = torch.randint(0, 2, (o.batch_size, config.fingerprint_length), generator=g).float().to(device)
        # the attacks' clock starts once the clean bits are read (the schedule's switch step)
        started = schedule.image_loss_on_step
        attack_step = step - started if started >= 0 else 0
        attack = draw_attack(o, o.batch_size, g, min(1.0, attack_step / max(1, o.augment_ramp)))

        marked = embed_native(codec, x, bits, schedule.rms)
        marked = marked + (torch.round(marked * 255) / 255 - marked).detach()  # what a PNG holds
        sync = o.sync_weight > 0 and started >= 0
        logits, wrong = attack_and_read(codec, marked, attack, augmenter, attack_step, g, sync=sync)
        loss = F.binary_cross_entropy_with_logits(logits, bits)
        if wrong is not None:
            loss = loss + o.sync_weight * wrong.pow(2).mean()
        for group in opt.param_groups:
            group["lr"] = o.lr * schedule.lr_factor(step, o.steps, o.lr_final_factor)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

        accuracy = ((logits.detach() > 0).float() == bits).float().mean().item()
        schedule.update(step, accuracy)
        bar.update(1)
        bar.set_postfix(acc=f"{schedule.accuracy_ema:.3f}", rms=f"{schedule.rms:.4f}", loss=f"{loss.item():.3f}")
        if step % o.eval_every == 0 or step == o.steps:
            stats = {
                "train/loss": loss.item(), "train/bit_accuracy_ema": schedule.accuracy_ema,
                "schedule/residual_rms": float(schedule.rms), "schedule/lr": opt.param_groups[0]["lr"],
                "time/seconds": time.time() - t0,
            }  # fmt: skip
            stats.update(evaluate(codec, val_images.to(device), schedule.rms, o.seed))
            log.write(step, stats)
            tqdm.write(" ".join(f"{k.split('/')[-1]}={v:.4g}" for k, v in stats.items()))
        if step % o.snapshot_every == 0 and step != o.steps:
            save(step)
    bar.close()
    save(step, final=True)
    log.close()
    return run_dir
