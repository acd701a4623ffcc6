"""Training scalable fingerprinting: one readable loop, exact resume, data-parallel under torchrun.

Each step draws, for every sample, a latent z ~ N(0, I), a fingerprint code c and an independent
code c' (fresh fair bits), and minimises (Yu et al., ICLR 2022):

    G and F:  softplus(-D(G(z, c)))                           adversarial, weight 1
              + 2 * mean (G(z, c) - G(z, c'))^2                consistency (--decoupleL2-weight)
              + 1 * mean (z - F_z(G(z, c)))^2                  z reconstruction (--latentsRecL2-weight)
              + 2 * BCE(F_c(G(z, c)), c)                       c reconstruction (--watermarkCls-weight)
    D:        softplus(D(G(z, c))) + softplus(-D(x))           + lazy R1: every 16 steps
              16 * gamma / 2 * |grad_x D(x)|^2

G, F and D each have Adam (lr 0.002, betas (0, 0.99), eps 1e-8); D's learning rate and betas are
rescaled for the lazy R1 (lr * 16/17, betas ** 16/17). An exponential moving average of G (half-life
`ema_kimg`) is what snapshots, grids and metrics use. G(z, c) and G(z, c') run as one batch and share
their noise maps, so the consistency term measures the effect of the code alone. Path-length
regularisation (optional in the paper) is not implemented.

Randomness is a function of (seed, step): the data order (`training_data.StepBatches`), mirroring, z,
c, c' and the noise maps are drawn from a generator seeded by the step for the whole global batch, and
each process takes its slice. A resumed run therefore continues exactly as the uninterrupted one (the
checkpoint holds weights, optimizer states, EMA and the image count; no RNG state needs saving), and
N processes compute what one process would with the same global batch.

Under `torchrun --nproc_per_node N ganprint scalable train ...` every process trains on batch / N
images with DistributedDataParallel (gloo on CPU, nccl on CUDA); process 0 writes the run folder:

    <output_dir>/00000-scalable-cpu32-32px-128b/
        options.json                  every option (resolved), reused by --resume
        reals.png                     training images
        fakes-arbitrary-000050.png    random z and c            (EMA generator, stored noise)
        fakes-fingerprints-same-*.png one c, many z
        fakes-latents-same-*.png      one z, many c
        network-snapshot-000050/      inference weights: G (EMA) + F, config.json + model.safetensors
        checkpoint.pt                 resume checkpoint (replaced atomically at each snapshot)
        stats.jsonl, events.out.*     losses, bit accuracy, speed (TensorBoard)
        metric-bit_accuracy.txt       one line per evaluation
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from torchvision.utils import make_grid
from tqdm import tqdm

from .. import checkpoint
from ..device import resolve_device
from ..errors import GanprintError
from ..io import atomic_write_text
from ..runs import StatsLog, new_run_dir, write_options
from ..stylegan import Decoder, Discriminator, Generator
from ..visualize import save_png
from .config import ScalableConfig, parse_res_range, preset
from .network import ScalableNetwork, from_unit, quantize_unit, to_unit
from .training_data import open_training_source, sample_images, training_batches

RUN_KIND = "ganprint.scalable.train"
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainOptions:
    data: str  # training images: folder, zip, idx file, "fashion-mnist[:train]"
    output_dir: str = "runs"  # parent folder of the numbered run folders
    preset: str = "cpu32"  # networks and training defaults (config.PRESETS)
    fingerprint_size: int | None = None  # bits of the code c (default: the preset's, 128)
    res_modulated_range: str | None = None  # e.g. "4-32": resolutions modulated by c (default: all)
    batch_size: int | None = None  # images per step over all processes (default: the preset's)
    gamma: float | None = None  # R1 weight (default: the preset's)
    lr: float | None = None  # Adam learning rate of G, F, D (default 0.002)
    consistency_weight: float = 2.0  # mean (G(z,c) - G(z,c'))^2 (original --decoupleL2-weight)
    z_reconstruction_weight: float = 1.0  # mean (z - F_z)^2 (original --latentsRecL2-weight)
    c_reconstruction_weight: float = 2.0  # BCE of F's c logits (original --watermarkCls-weight)
    consistency_rampup_kimg: float = 0.0  # consistency weight grows linearly from 0 over this many kimg (0: off)
    decoder_lr: float | None = None  # Adam learning rate of F (default: lr)
    r1_interval: int = 16  # steps between lazy R1 evaluations (0: no R1)
    ema_kimg: float | None = None  # EMA half-life in kimg (default: the preset's)
    ema_rampup: float | None = None  # EMA half-life <= this share of images seen (default: preset; 0 off)
    total_kimg: float | None = None  # training length in thousands of images (default: the preset's)
    mirror_augment: bool = False  # flip training images horizontally at random
    tick_kimg: float = 1.0  # kimg between lines in stats.jsonl
    metrics_kimg: float = 10.0  # kimg between bit-accuracy evaluations (0: only at the end)
    metric_images: int = 1024  # generated images per bit-accuracy evaluation
    snapshot_kimg: float = 50.0  # kimg between snapshots, grids and resume checkpoints
    seed: int = 0  # seeds weights, data order and every random draw
    num_workers: int = 0  # data loader processes per training process
    device: str = "auto"  # auto, cpu, cuda (cuda:LOCAL_RANK under torchrun)
    strict: bool = False  # stop at an unreadable image instead of skipping it
    progress: bool = True  # tqdm progress bar in kimg with ETA
    network: dict | None = None  # ScalableConfig fields overriding the preset (small experiments, tests)

    def resolved(self) -> "TrainOptions":
        """A copy with every default taken from the preset and `network` the full network config."""
        p = preset(self.preset)
        net = dataclasses.asdict(p.network)
        net.update(self.network or {})
        if self.fingerprint_size is not None:
            net["fingerprint_size"] = self.fingerprint_size
        if self.res_modulated_range is not None:
            net["res_modulated_range"] = parse_res_range(self.res_modulated_range)
        elif "res_modulated_range" not in (self.network or {}):
            net["res_modulated_range"] = (4, net["resolution"])
        try:
            config = ScalableConfig(**net).validate()
        except TypeError as exc:
            raise GanprintError(f"bad network options ({exc})") from None
        t = p.training
        ema_rampup = t.ema_rampup if self.ema_rampup is None else (self.ema_rampup or None)
        return dataclasses.replace(
            self, fingerprint_size=config.fingerprint_size,
            res_modulated_range=f"{config.res_modulated_range[0]}-{config.res_modulated_range[1]}",
            batch_size=self.batch_size or t.batch_size, gamma=t.gamma if self.gamma is None else self.gamma,
            lr=self.lr or t.lr, ema_kimg=self.ema_kimg or t.ema_kimg, ema_rampup=ema_rampup,
            total_kimg=self.total_kimg or t.total_kimg, network=json.loads(json.dumps(dataclasses.asdict(config))),
        )  # fmt: skip

    def network_config(self) -> ScalableConfig:
        return ScalableConfig(**self.resolved().network)


def load_run_options(run_dir: str | os.PathLike) -> TrainOptions:
    """The options of an earlier run, for --resume."""
    path = Path(run_dir) / "options.json"
    if not path.is_file():
        raise GanprintError(f"{run_dir}: not a training run folder (no options.json)")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GanprintError(f"{path}: unreadable run options ({exc.__class__.__name__})") from None
    if not isinstance(saved, dict) or saved.get("kind") != RUN_KIND:
        raise GanprintError(f"{run_dir}: not a scalable fingerprinting run (options.json of another kind)")
    names = {f.name for f in dataclasses.fields(TrainOptions)}
    try:
        return TrainOptions(**{k: v for k, v in saved.items() if k in names})
    except TypeError as exc:
        raise GanprintError(f"{path}: unreadable run options ({exc})") from None


# ----------------------------------------------------------------------------- helpers


def _distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the torchrun process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, resolve_device(device)
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), dev


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed + 1) * 1_000_003 + step)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """A grid of [0, 1] images; small images are enlarged (nearest) so the grid is >= 512 px wide."""
    grid = make_grid(images.detach().cpu().float().clamp(0, 1), nrow=nrow, padding=0)
    array = (grid * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(array)
    if image.width < 512:
        scale = max(1, 512 // image.width)
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    save_png(image, path)


@torch.no_grad()
def bit_accuracy(G: Generator, F_: Decoder, count: int, seed: int = 123, batch: int = 128) -> tuple[float, float]:
    """Mean bit accuracy of F on `count` images of G with fresh random codes (stored noise): on the
    float outputs (as the paper) and on the images rounded to 8 bits (as saved PNGs)."""
    device = next(G.parameters()).device
    g = torch.Generator().manual_seed(seed)
    hits = hits8 = total = 0
    for start in range(0, count, batch):
        n = min(batch, count - start)
        z = torch.randn(n, G.config.z_dim, generator=g).to(device)
        c = torch.randint(0, 2, (n, G.config.c_dim), generator=g).float().to(device)
        img = G(z, c)
        hits += ((F_(img)[1] > 0).float() == c).sum().item()
        hits8 += ((F_(from_unit(quantize_unit(to_unit(img))))[1] > 0).float() == c).sum().item()
        total += c.numel()
    return hits / total, hits8 / total


def _description(o: TrainOptions) -> str:
    return f"scalable-{o.preset}-{o.network['resolution']}px-{o.fingerprint_size}b"


def _every(kimg: float, batch: int) -> int:
    return max(1, round(kimg * 1000 / batch)) if kimg > 0 else 0


# ----------------------------------------------------------------------------- training


def train_scalable(options: TrainOptions, resume: str | os.PathLike | None = None,
                   should_stop: Callable[[int], bool] | None = None) -> Path | None:  # fmt: skip
    """Train (or, with `resume` = a run folder, continue) a scalable fingerprinting GAN.

    Returns the run folder (None on processes other than 0). `should_stop(step)`, checked after
    every step, ends training early with a resume checkpoint (Ctrl-C in the CLI).
    """
    o = options.resolved()
    cfg = ScalableConfig(**o.network)
    rank, world, device = _distributed(o.device)
    B = o.batch_size
    if B % world:
        raise GanprintError(f"--batch {B} does not split evenly over {world} processes")
    b = B // world
    group = min(cfg.mbstd_group, b)
    if group and b % group:
        raise GanprintError(f"the per-process batch {b} is not a multiple of the minibatch-stddev group {group}")
    L, R = cfg.fingerprint_size, cfg.resolution
    source = open_training_source(o.data)

    torch.manual_seed(o.seed)
    G = Generator(cfg.generator_config()).to(device).train()
    D = Discriminator(cfg.discriminator_config()).to(device).train()
    F_ = Decoder(cfg.discriminator_config(), cfg.z_dim, L).to(device).train()
    if D.mbstd is not None:
        D.mbstd.group_size = group
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    adam = dict(betas=(0.0, 0.99), eps=1e-8)
    opt_G = torch.optim.Adam(G.parameters(), lr=o.lr, **adam)
    opt_F = torch.optim.Adam(F_.parameters(), lr=o.decoder_lr or o.lr, **adam)
    lazy = o.r1_interval / (o.r1_interval + 1) if o.r1_interval > 0 else 1.0
    opt_D = torch.optim.Adam(D.parameters(), lr=o.lr * lazy, betas=(0.0, 0.99**lazy), eps=1e-8)

    start = 0
    if resume is not None:
        run_dir = Path(resume)
        state = checkpoint.load_training_checkpoint(run_dir / CHECKPOINT)
        if state.get("kind") != RUN_KIND:
            raise GanprintError(f"{run_dir / CHECKPOINT}: not a scalable fingerprinting checkpoint")
        if state.get("config") != cfg.to_dict() or state.get("batch_size") != B:
            raise GanprintError(f"{run_dir}: its checkpoint is of another configuration than the run's options")
        where = str(run_dir / CHECKPOINT)
        for module, key in ((G, "G"), (D, "D"), (F_, "F"), (G_ema, "G_ema")):
            checkpoint.load_state(module, state[key], where)
        for opt, key in ((opt_G, "opt_G"), (opt_D, "opt_D"), (opt_F, "opt_F")):
            opt.load_state_dict(state[key])
        start = int(state["step"])
    total = math.ceil(o.total_kimg * 1000 / B)
    if start > total:
        raise GanprintError(f"{resume}: already trained {start * B / 1000:g} kimg, more than --total-kimg {o.total_kimg:g}")

    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        G_t, D_t, F_t = (DistributedDataParallel(m, device_ids=ids, broadcast_buffers=False) for m in (G, D, F_))
    else:
        G_t, D_t, F_t = G, D, F_

    run_dir, log = None, None
    grid_g = torch.Generator().manual_seed(o.seed + 99_991)
    grid_z = torch.randn(64, cfg.z_dim, generator=grid_g).to(device)
    grid_c = torch.randint(0, 2, (64, L), generator=grid_g).float().to(device)
    if rank == 0:
        run_dir = Path(resume) if resume is not None else new_run_dir(o.output_dir, _description(o))
        write_options(run_dir, {"kind": RUN_KIND, **dataclasses.asdict(o)})
        log = StatsLog(run_dir)
        log.truncate_after(start)
        if resume is None:
            save_grid(sample_images(source, R, 64), run_dir / "reals.png")

    def save(step: int) -> None:
        """Snapshot (inference weights), grids and the resume checkpoint; process 0 only."""
        kimg = step * B // 1000
        net = ScalableNetwork(cfg).to(device)
        net.G.load_state_dict(G_ema.state_dict())
        net.F.load_state_dict(F_.state_dict())
        net.save_pretrained(run_dir / f"network-snapshot-{kimg:06d}",
                            extra={"training": {"kimg": step * B / 1000, "data": o.data, "run": run_dir.name}})  # fmt: skip
        with torch.no_grad():
            save_grid(to_unit(G_ema(grid_z, grid_c)), run_dir / f"fakes-arbitrary-{kimg:06d}.png")
            save_grid(to_unit(G_ema(grid_z, grid_c[:1].expand(64, -1))), run_dir / f"fakes-fingerprints-same-{kimg:06d}.png")
            save_grid(to_unit(G_ema(grid_z[:1].expand(64, -1), grid_c)), run_dir / f"fakes-latents-same-{kimg:06d}.png")
        checkpoint.save_training_checkpoint(run_dir / CHECKPOINT, {
            "kind": RUN_KIND, "config": cfg.to_dict(), "batch_size": B, "step": step,
            "G": G.state_dict(), "D": D.state_dict(), "F": F_.state_dict(), "G_ema": G_ema.state_dict(),
            "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(), "opt_F": opt_F.state_dict(),
        })  # fmt: skip

    def evaluate(step: int, elapsed: float) -> dict:
        acc, acc8 = bit_accuracy(G_ema, F_, o.metric_images)
        F_.train()
        line = (f"kimg {step * B / 1000:<8.1f} time {elapsed / 60:6.1f} min  bit_accuracy {acc:.4f}  "
                f"bit_accuracy_uint8 {acc8:.4f}")  # fmt: skip
        tqdm.write(line)
        path = run_dir / "metric-bit_accuracy.txt"
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        atomic_write_text(path, old + line + "\n")
        return {"metrics/bit_accuracy": acc, "metrics/bit_accuracy_uint8": acc8}

    tick, metric_every, snapshot_every = _every(o.tick_kimg, B), _every(o.metrics_kimg, B), _every(o.snapshot_kimg, B)
    gf_params = [*G.parameters(), *F_.parameters()]
    noise_shapes = G.noise_shapes()
    part = slice(rank * b, (rank + 1) * b)
    sums: dict[str, float] = {}
    bar = tqdm(total=round(total * B / 1000, 3), initial=round(start * B / 1000, 3), unit="kimg",
               disable=not o.progress or rank != 0, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]")  # fmt: skip
    t0, t_tick, step = time.time(), time.time(), start
    batches = training_batches(source, R, B, o.seed, start, total, rank, world, o.num_workers, o.strict)
    for step in range(start + 1, total + 1):
        g = _step_generator(o.seed, step)
        z = torch.randn(B, cfg.z_dim, generator=g)[part].to(device)
        c = torch.randint(0, 2, (B, L), generator=g).float()[part].to(device)
        c2 = torch.randint(0, 2, (B, L), generator=g).float()[part].to(device)
        flip = (torch.rand(B, generator=g) < 0.5)[part].to(device)
        noise = [torch.randn(B, *s, generator=g)[part].to(device).repeat(2, 1, 1, 1) for s in noise_shapes]
        reals = from_unit(next(batches).to(device))
        if o.mirror_augment:
            reals = torch.where(flip.view(-1, 1, 1, 1), reals.flip(-1), reals)

        # G and F: one generator pass for (z, c) and (z, c'); D's weights get no gradient here.
        fakes = G_t(torch.cat([z, z]), torch.cat([c, c2]), noise=noise)
        fake, fake2 = fakes[:b], fakes[b:]
        adversarial = F.softplus(-D(fake)).mean()
        consistency = (fake - fake2).square().mean()
        z_hat, c_logits = F_t(fake)
        z_rec = (z_hat - z).square().mean()
        c_rec = F.binary_cross_entropy_with_logits(c_logits, c)
        ramp = min(1.0, (step - 1) * B / (o.consistency_rampup_kimg * 1000)) if o.consistency_rampup_kimg > 0 else 1.0
        loss_G = (adversarial + ramp * o.consistency_weight * consistency + o.z_reconstruction_weight * z_rec
                  + o.c_reconstruction_weight * c_rec)  # fmt: skip
        opt_G.zero_grad(set_to_none=True)
        opt_F.zero_grad(set_to_none=True)
        loss_G.backward(inputs=gf_params)
        opt_G.step()
        opt_F.step()

        # D, with the lazy R1 penalty on the real images every r1_interval steps.
        do_r1 = o.r1_interval > 0 and o.gamma > 0 and step % o.r1_interval == 0
        x_real = reals.detach().requires_grad_(do_r1)
        logits = D_t(torch.cat([x_real, fake.detach()]))
        real_logits, fake_logits = logits[:b], logits[b:]
        loss_D = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        if do_r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), x_real, create_graph=True)
            r1 = grad.square().sum(dim=(1, 2, 3)).mean()
            loss_D = loss_D + r1 * (o.gamma / 2) * o.r1_interval
            sums["loss/r1"] = sums.get("loss/r1", 0.0) + r1.item()
            sums["r1_n"] = sums.get("r1_n", 0) + 1
        opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        opt_D.step()

        # Moving average of G.
        nimg = step * B
        ema_nimg = o.ema_kimg * 1000
        if o.ema_rampup:
            ema_nimg = min(ema_nimg, nimg * o.ema_rampup)
        beta = 0.5 ** (B / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b_ in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b_)

        # Logs, metrics, snapshots (process 0).
        train_acc = ((c_logits.detach() > 0).float() == c).float().mean().item()
        for key, value in (("loss/G_adversarial", adversarial), ("loss/consistency", consistency),
                           ("loss/z_reconstruction", z_rec), ("loss/c_reconstruction", c_rec), ("loss/D", loss_D),
                           ("train/bit_accuracy", train_acc)):  # fmt: skip
            sums[key] = sums.get(key, 0.0) + (value.item() if torch.is_tensor(value) else value)
        sums["n"] = sums.get("n", 0) + 1
        stop = bool(should_stop and should_stop(step))
        if world > 1:  # every process must stop at the same step
            flag = torch.tensor([float(stop)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        if rank != 0:
            if stop:
                break
            continue
        bar.update(round(step * B / 1000, 3) - bar.n)
        bar.set_postfix_str(f"bit acc {train_acc:.3f}")
        last = step == total or stop
        values = {}
        if (tick and step % tick == 0) or last:
            n, r1_n = sums.pop("n"), sums.pop("r1_n", 0)
            values = {k: v / (r1_n if k == "loss/r1" else n) for k, v in sums.items()}
            sums.clear()
            now = time.time()
            values.update({"progress/kimg": nimg / 1000, "time/seconds": now - t0,
                           "speed/images_per_second": n * B / max(now - t_tick, 1e-9)})  # fmt: skip
            t_tick = now
        if (metric_every and step % metric_every == 0) or last:
            values.update(evaluate(step, time.time() - t0))
        if values:
            log.write(step, values)
        if (snapshot_every and step % snapshot_every == 0) or last:
            save(step)
        if stop:
            break
    bar.close()
    if rank == 0:
        log.close()
        if start == total:
            tqdm.write(f"nothing to do: the run already has {o.total_kimg:g} kimg; give a larger --total-kimg")
        elif step < total:
            tqdm.write(f"stopped at {step * B / 1000:.1f} kimg; continue with --resume {run_dir}")
    return run_dir
