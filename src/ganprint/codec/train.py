"""Training the codec: one readable loop, exact resume, fixed seeds.

Each step draws fresh random bits for every image, embeds them, rounds the result to 8-bit levels
(straight-through, so the decoder trains on what a PNG will hold), decodes, and minimises
    bce_loss_weight * BCE(logits, bits) + w(t) * MSE(fingerprinted, clean)
while the FidelitySchedule lowers the residual strength (ganprint arch) or raises w(t) (original).
Randomness (data order, flips, bits) is drawn from generators seeded by (seed, step), so a resumed
run continues exactly as the uninterrupted one would.

Immunized training (`augment`, ganprint.augment): differentiable perturbations (noise, blur, JPEG,
crop, colour) between the 8-bit fingerprinted image and the decoder, one per image, ramped in over
`augment_ramp` steps; their randomness comes from the same per-step generator, after the bits.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import checkpoint
from ..augment import Augmenter
from ..data import TrainingImages, open_source, split_indices
from ..device import resolve_device
from ..errors import GanprintError
from ..runs import StatsLog, check_room_for_checkpoint, new_run_dir, write_options
from ..visualize import residual_grid, save_png
from .codec import FingerprintCodec
from .config import CodecConfig
from .networks import ResidualEncoder
from .schedule import FidelitySchedule


@dataclass
class CodecTrainOptions:
    data_dir: str  # image folder, zip, idx file, "fashion-mnist" or "samples"
    output_dir: str = "runs"  # parent folder of the numbered run folders
    arch: str = "ganprint"  # "ganprint" or "original"
    image_resolution: int = 32  # training resolution (power of two >= 32)
    fingerprint_length: int = 100  # bits per fingerprint
    use_celeba_preprocessing: bool = False  # CelebA aligned crop 148 -> 128
    channels: int = 64  # ganprint arch network width
    batch_size: int = 64  # images per step
    steps: int | None = None  # total steps (default: from epochs, else 3000)
    epochs: float | None = None  # passes over the training split, instead of steps
    lr: float | None = None  # Adam learning rate (default 1e-3 ganprint, 1e-4 original)
    bce_loss_weight: float = 1.0  # weight of the bit loss
    l2_loss_scale: float | None = None  # final image-loss weight (default 0 ganprint, 10 original)
    l2_loss_await: int = 1000  # steps from the accuracy switch to the ramp start
    l2_loss_ramp: int = 3000  # ramp length in steps
    warmup_accuracy: float = 0.9  # smoothed accuracy that switches the image loss on
    residual_rms: float = 0.014  # ganprint arch: target residual RMS (PSNR ~ 37 dB)
    start_rms: float = 0.1  # ganprint arch: residual RMS at step 0
    mean_preserving: bool = False  # ganprint arch: the residual leaves each channel's mean unchanged
    anneal_accuracy: float = 0.995  # smoothed accuracy that lowers the residual RMS one step
    anneal_factor: float = 0.9  # factor of each step down
    lr_final_factor: float = 0.1  # ganprint arch: lr decays to this share once the residual is at target
    quantize: bool = True  # round fingerprinted images to 8 bits before decoding (straight-through)
    augment: str | None = None  # immunized training: perturbations before the decoder ("default" or a list)
    augment_ramp: int = 1000  # steps over which the perturbation strength grows from 0 to full
    hflip: bool = True  # random horizontal flips of training images
    val_fraction: float = 0.05  # held-out share of the data for evaluation
    max_val_images: int = 512  # cap on the held-out split
    eval_every: int = 100  # steps between held-out evaluations (stats.jsonl, TensorBoard)
    snapshot_every: int = 500  # steps between snapshots and resume checkpoints
    seed: int = 0  # seeds weights, data order, flips and bits
    num_workers: int = 0  # data loader processes
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    progress: bool = True  # show a progress bar
    init: str | None = None  # start from this codec's weights (name or folder): fine-tuning, e.g. immunizing a shipped codec

    def codec_config(self) -> CodecConfig:
        return CodecConfig(
            arch=self.arch,
            resolution=self.image_resolution,
            fingerprint_length=self.fingerprint_length,
            channels=self.channels,
            residual_rms=self.residual_rms,
            mean_preserving=self.mean_preserving,
        ).validate()


class _StepBatches(torch.utils.data.Sampler):
    """Index batches for steps [start, total): epoch e is a permutation seeded by (seed, e)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, total: int):
        self.n, self.batch_size, self.seed, self.start, self.total = n, batch_size, seed, start, total
        self.per_epoch = max(1, n // batch_size) if n >= batch_size else 1

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self):
        perm, perm_epoch = None, -1
        for step in range(self.start, self.total):
            epoch, pos = divmod(step, self.per_epoch)
            if epoch != perm_epoch:
                g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
                perm, perm_epoch = torch.randperm(self.n, generator=g), epoch
            idx = perm[pos * self.batch_size : (pos + 1) * self.batch_size]
            if len(idx) < self.batch_size:  # tiny datasets: sample with replacement to fill the batch
                g = torch.Generator().manual_seed(self.seed * 7919 + step)
                idx = torch.cat([idx, torch.randint(0, self.n, (self.batch_size - len(idx),), generator=g)])
            yield idx.tolist()


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed + 1) * 1_000_003 + step)


def _embed(codec: FingerprintCodec, images, bits, rms):
    if isinstance(codec.encoder, ResidualEncoder):
        return codec.encoder(images, bits, rms=rms)
    return codec.encoder(images, bits)


@torch.no_grad()
def evaluate(
    codec: FingerprintCodec, images: torch.Tensor, rms: float | None, seed: int, augmenter: Augmenter | None = None
) -> dict[str, float]:
    """Held-out bit accuracy after 8-bit rounding, PSNR, and accuracy on clean images (should be 0.5);
    with an augmenter, also the accuracy with every image perturbed at full strength."""
    codec.eval()
    g = torch.Generator().manual_seed(seed + 12345)
    bits = torch.randint(0, 2, (images.shape[0], codec.config.fingerprint_length), generator=g).float()
    accs, clean_accs, aug_accs, mses = [], [], [], []
    for s in range(0, images.shape[0], 128):
        x, b = images[s : s + 128].to(codec.device), bits[s : s + 128].to(codec.device)
        marked = torch.round(_embed(codec, x, b, rms) * 255) / 255
        accs.append(((codec.decoder(marked) > 0).float() == b).float().mean(1))
        clean_accs.append(((codec.decoder(x) > 0).float() == b).float().mean(1))
        mses.append((marked - x).pow(2).mean((1, 2, 3)))
        if augmenter is not None:
            attacked = augmenter.full_strength(marked, torch.Generator().manual_seed(seed + 54321 + s))
            aug_accs.append(((codec.decoder(attacked) > 0).float() == b).float().mean(1))
    codec.train()
    mse = torch.cat(mses).clamp_min(1e-10)
    stats = {
        "val/bit_accuracy": torch.cat(accs).mean().item(),
        "val/psnr": (10 * torch.log10(1 / mse)).mean().item(),
        "val/clean_bit_accuracy": torch.cat(clean_accs).mean().item(),
    }
    if aug_accs:
        stats["val/bit_accuracy_augmented"] = torch.cat(aug_accs).mean().item()
    return stats


def _load_initial_weights(codec: FingerprintCodec, init: str) -> None:
    """Copy the weights of codec `init` into `codec`; the networks must be the same (arch, resolution,
    bits, widths). The residual's strength and mean handling may differ: they are settings of the
    encoder, not weights."""
    from .importing import load_codec

    start = load_codec(init)
    settings = {"residual_rms": 0.0, "mean_preserving": False}
    ours = dataclasses.replace(codec.config, **settings).to_dict()
    theirs = dataclasses.replace(start.config, **settings).to_dict()
    if ours != theirs:
        differ = ", ".join(f"{k} {theirs.get(k)} vs {ours.get(k)}" for k in sorted(ours) if ours.get(k) != theirs.get(k))
        raise GanprintError(f"--init {init}: its networks differ from this run's options ({differ})")
    codec.load_state_dict(start.state_dict())


def _description(o: CodecTrainOptions) -> str:
    return f"codec-{o.arch}-{o.image_resolution}px-{o.fingerprint_length}b"


def train_codec(options: CodecTrainOptions, resume: str | Path | None = None) -> Path:
    """Train (or resume) a codec; returns the run folder. The final model is in `<run>/final`."""
    o = options
    config = o.codec_config()
    if o.use_celeba_preprocessing and o.image_resolution != 128:
        raise GanprintError("--use_celeba_preprocessing needs --image_resolution 128 (as the original tools)")
    if o.batch_size < 1:
        raise GanprintError("--batch_size must be at least 1")
    augmenter = Augmenter.from_spec(o.augment, o.augment_ramp) if o.augment else None
    device = resolve_device(o.device)

    source = open_source(o.data_dir)
    train_idx, val_idx = split_indices(len(source), o.val_fraction, o.max_val_images, o.seed)
    steps_per_epoch = max(1, math.ceil(len(train_idx) / o.batch_size))
    total = o.steps if o.steps is not None else (round(o.epochs * steps_per_epoch) if o.epochs else 3000)
    if total < 1:
        raise GanprintError("--steps must be at least 1")
    lr = o.lr if o.lr is not None else (1e-3 if o.arch == "ganprint" else 1e-4)
    l2_scale = o.l2_loss_scale if o.l2_loss_scale is not None else (0.0 if o.arch == "ganprint" else 10.0)

    torch.manual_seed(o.seed)
    codec = FingerprintCodec(config).to(device).train()
    if o.init is not None and resume is None:
        _load_initial_weights(codec, o.init)
    opt = torch.optim.Adam(codec.parameters(), lr=lr)
    schedule = FidelitySchedule(
        warmup_accuracy=o.warmup_accuracy, l2_loss_await=o.l2_loss_await, l2_loss_ramp=o.l2_loss_ramp,
        l2_loss_scale=l2_scale, anneal_accuracy=o.anneal_accuracy, anneal_factor=o.anneal_factor,
        start_rms=max(o.start_rms, o.residual_rms) if o.arch == "ganprint" else None,
        target_rms=o.residual_rms if o.arch == "ganprint" else None,
    )  # fmt: skip

    start = 0
    if resume is not None:
        run_dir = Path(resume)
        state = checkpoint.load_training_checkpoint(run_dir / "checkpoint.pt")
        if state.get("kind") != "ganprint.codec.train" or state.get("config") != config.to_dict():
            raise GanprintError(f"{run_dir}: resume checkpoint is of another configuration than this run's options")
        checkpoint.load_state(codec, state["model"], str(run_dir / "checkpoint.pt"))
        opt.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start = int(state["step"])
    else:
        run_dir = new_run_dir(o.output_dir, _description(o))
    check_room_for_checkpoint(run_dir, codec, opt)
    write_options(run_dir, {**dataclasses.asdict(o), "steps": total, "lr": lr, "l2_loss_scale": l2_scale})
    log = StatsLog(run_dir)
    log.truncate_after(start)

    val_images = (
        torch.stack([TrainingImages(source, val_idx, o.image_resolution, o.use_celeba_preprocessing)[i] for i in range(len(val_idx))])
        if len(val_idx) else None
    )  # fmt: skip
    data = TrainingImages(source, train_idx, o.image_resolution, o.use_celeba_preprocessing)
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=_StepBatches(len(data), o.batch_size, o.seed, start, total), num_workers=o.num_workers
    )

    def save(step: int, final: bool = False) -> None:
        snap_config = dataclasses.replace(config, residual_rms=float(schedule.rms or config.residual_rms))
        snap = FingerprintCodec(snap_config).to(device)
        snap.load_state_dict(codec.state_dict())
        snap.save_pretrained(run_dir / ("final" if final else f"snapshot-{step:06d}"))
        checkpoint.save_training_checkpoint(run_dir / "checkpoint.pt", {
            "kind": "ganprint.codec.train", "config": config.to_dict(), "step": step,
            "model": codec.state_dict(), "optimizer": opt.state_dict(), "schedule": schedule.state_dict(),
        })  # fmt: skip
        if val_images is not None:
            with torch.no_grad():
                x = val_images[:12].to(device)
                bits = torch.randint(0, 2, (x.shape[0], config.fingerprint_length), generator=_step_generator(o.seed, -1))
                marked = torch.round(_embed(codec, x, bits.float().to(device), schedule.rms) * 255) / 255
            save_png(residual_grid(x, marked), run_dir / f"grid-{step:06d}.png")

    bar = tqdm(total=total, initial=start, desc="codec train", unit="step", disable=not o.progress, dynamic_ncols=True)
    t0, step = time.time(), start
    for step, images in enumerate(loader, start=start + 1):
        g = _step_generator(o.seed, step)
        x = images.to(device, non_blocking=True)
        if o.hflip:
            flip = torch.rand(x.shape[0], generator=g) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1).to(device), x.flip(-1), x)
        bits = torch.randint(0, 2, (x.shape[0], config.fingerprint_length), generator=g).float().to(device)

        marked = _embed(codec, x, bits, schedule.rms)
        seen = marked + (torch.round(marked * 255) / 255 - marked).detach() if o.quantize else marked
        if augmenter is not None:
            seen = augmenter(seen, step, g)
        logits = codec.decoder(seen)
        bce = F.binary_cross_entropy_with_logits(logits, bits)
        l2 = F.mse_loss(marked, x)
        for group in opt.param_groups:
            group["lr"] = lr * schedule.lr_factor(step, total, o.lr_final_factor)
        w_img = schedule.image_loss_weight(step)
        loss = o.bce_loss_weight * bce + w_img * l2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

        accuracy = ((logits.detach() > 0).float() == bits).float().mean().item()
        schedule.update(step, accuracy)
        bar.update(1)
        bar.set_postfix(acc=f"{schedule.accuracy_ema:.3f}", rms=f"{schedule.rms or 0:.4f}", loss=f"{loss.item():.3f}")

        if step % o.eval_every == 0 or step == total:
            stats = {
                "train/loss": loss.item(), "train/bce": bce.item(), "train/l2": l2.item(),
                "train/bit_accuracy_ema": schedule.accuracy_ema, "schedule/image_loss_weight": w_img,
                "schedule/residual_rms": float(schedule.rms or 0.0), "schedule/lr": opt.param_groups[0]["lr"], "time/seconds": time.time() - t0,
            }  # fmt: skip
            if augmenter is not None:
                stats["schedule/augment_ramp"] = augmenter.ramp(step)
            if val_images is not None:
                stats.update(evaluate(codec, val_images, schedule.rms, o.seed, augmenter))
            log.write(step, stats)
        if step % o.snapshot_every == 0 and step != total:
            save(step)
    bar.close()
    save(step, final=True)
    log.close()
    if not schedule.at_target:
        tqdm.write(
            f"warning: training ended before the residual reached its target RMS {o.residual_rms} "
            f"(now {schedule.rms:.4f}); train longer for higher PSNR"
        )
    return run_dir
