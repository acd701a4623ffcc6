"""Training an unconditional StyleGAN2-style GAN on any image set (the "any generative model" of
artificial fingerprinting: train it on fingerprinted images and its outputs carry the fingerprint).

Losses (Karras et al. 2020): non-saturating logistic loss, softplus(-D(G(z))) for G and
softplus(D(G(z))) + softplus(-D(x)) for D, plus the lazy R1 penalty 16 * gamma / 2 * |grad_x D(x)|^2
every `r1_interval` (16) steps. Adam (lr 0.002, betas (0, 0.99), eps 1e-8); D's lr and betas are
rescaled for the lazy R1 (lr * 16/17, betas ** 16/17). An exponential moving average of G (half-life
`ema_kimg`, optionally ramped up) is what snapshots, grids and generation use.

The pieces shared with scalable fingerprinting are imported, not copied: the networks
(`ganprint.stylegan`), the deterministic data stream (`scalable.training_data`), the per-step seeding,
process-group set-up and grids (`scalable.train`). Randomness is a function of (seed, step), so a
resumed run continues exactly as the uninterrupted one, and N processes under torchrun compute what
one process would with the same global batch.

    <output_dir>/00000-gan-cpu32-32px/
        options.json                  every option (resolved), reused by --resume
        reals.png                     training images
        fakes-000050.png              64 fixed latents through the EMA generator (stored noise)
        network-snapshot-000050/      inference weights: config.json + model.safetensors (G EMA)
        checkpoint.pt                 resume checkpoint (replaced atomically at each snapshot)
        stats.jsonl, events.out.*     losses, discriminator scores, speed (TensorBoard)
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
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .. import checkpoint
from ..errors import GanprintError
from ..runs import StatsLog, new_run_dir, write_options
from ..scalable.network import from_unit, to_unit
from ..scalable.train import _distributed, _every, _step_generator, save_grid
from ..scalable.training_data import open_training_source, sample_images, training_batches
from ..stylegan import Discriminator, Generator
from .network import GanConfig, GanNetwork, preset

RUN_KIND = "ganprint.gan.train"
CHECKPOINT = "checkpoint.pt"


@dataclass
class GanTrainOptions:
    data: str  # training images: folder, zip, idx file, `ganprint dataset`, "fashion-mnist[:train]"
    output_dir: str = "runs"  # parent folder of the numbered run folders
    preset: str = "cpu32"  # networks and training defaults (gan.network.PRESETS)
    batch_size: int | None = None  # images per step over all processes (default: the preset's)
    gamma: float | None = None  # R1 weight (default: the preset's)
    lr: float | None = None  # Adam learning rate of G and D (default: the preset's, 0.002)
    r1_interval: int = 16  # steps between lazy R1 evaluations (0: no R1)
    ema_kimg: float | None = None  # EMA half-life in kimg (default: the preset's)
    ema_rampup: float | None = None  # EMA half-life <= this share of images seen (default: preset; 0 off)
    total_kimg: float | None = None  # training length in thousands of images (default: the preset's)
    mirror_augment: bool = False  # flip training images horizontally at random
    tick_kimg: float = 1.0  # kimg between lines in stats.jsonl
    snapshot_kimg: float = 50.0  # kimg between snapshots, grids and resume checkpoints (0: end only)
    seed: int = 0  # seeds weights, data order and every random draw
    num_workers: int = 0  # data loader processes per training process
    device: str = "auto"  # auto, cpu, cuda (cuda:LOCAL_RANK under torchrun)
    strict: bool = False  # stop at an unreadable image instead of skipping it
    progress: bool = True  # tqdm progress bar in kimg with ETA
    network: dict | None = None  # GanConfig fields overriding the preset (small experiments, tests)

    def resolved(self) -> "GanTrainOptions":
        """A copy with every default taken from the preset and `network` the full network config."""
        p = preset(self.preset)
        net = dataclasses.asdict(p.network)
        net.update(self.network or {})
        net.pop("kind", None)
        try:
            config = GanConfig(**net).validate()
        except TypeError as exc:
            raise GanprintError(f"bad network options ({exc})") from None
        t = p.training
        ema_rampup = t.ema_rampup if self.ema_rampup is None else (self.ema_rampup or None)
        return dataclasses.replace(
            self, batch_size=self.batch_size or t.batch_size, gamma=t.gamma if self.gamma is None else self.gamma,
            lr=self.lr or t.lr, ema_kimg=self.ema_kimg or t.ema_kimg, ema_rampup=ema_rampup,
            total_kimg=self.total_kimg or t.total_kimg, network=json.loads(json.dumps(dataclasses.asdict(config))),
        )  # fmt: skip


def load_run_options(run_dir: str | os.PathLike) -> GanTrainOptions:
    """The options of an earlier GAN run, for --resume."""
    path = Path(run_dir) / "options.json"
    if not path.is_file():
        raise GanprintError(f"{run_dir}: not a training run folder (no options.json)")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GanprintError(f"{path}: unreadable run options ({exc.__class__.__name__})") from None
    if not isinstance(saved, dict) or saved.get("kind") != RUN_KIND:
        raise GanprintError(f"{run_dir}: not an unconditional GAN run (options.json of another kind)")
    names = {f.name for f in dataclasses.fields(GanTrainOptions)}
    try:
        return GanTrainOptions(**{k: v for k, v in saved.items() if k in names})
    except TypeError as exc:
        raise GanprintError(f"{path}: unreadable run options ({exc})") from None


# ----------------------------------------------------------------------------- training pieces
# Written as functions so that other StyleGAN2-style loops can share them.


def lazy_adam(params, lr: float, interval: int) -> torch.optim.Adam:
    """StyleGAN2's Adam for a network with a lazy regulariser every `interval` steps (0: none)."""
    ratio = interval / (interval + 1) if interval > 0 else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)


def discriminator_loss(D: torch.nn.Module, reals: torch.Tensor, fakes: torch.Tensor, r1_weight: float) -> dict:
    """Logistic loss of D on reals and (detached) fakes in one pass; with r1_weight > 0 also the R1
    penalty r1_weight * |grad_x D(x)|^2 on the reals. Returns the tensors by name ("loss" to minimise)."""
    x = reals.detach().requires_grad_(r1_weight > 0)
    logits = D(torch.cat([x, fakes.detach()]))
    real, fake = logits[: len(x)], logits[len(x) :]
    out = {"loss": F.softplus(fake).mean() + F.softplus(-real).mean(), "real_score": real.mean(), "fake_score": fake.mean()}
    if r1_weight > 0:
        (grad,) = torch.autograd.grad(real.sum(), x, create_graph=True)
        out["r1"] = grad.square().sum(dim=(1, 2, 3)).mean()
        out["loss"] = out["loss"] + r1_weight * out["r1"]
    return out


def ema_beta(batch: int, nimg: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """Decay per step of the generator's moving average with half-life ema_kimg (capped by the ramp-up)."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup:
        ema_nimg = min(ema_nimg, nimg * ema_rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def _description(o: GanTrainOptions) -> str:
    return f"gan-{o.preset}-{o.network['resolution']}px"


# ----------------------------------------------------------------------------- the loop


def train_gan(options: GanTrainOptions, resume: str | os.PathLike | None = None,
              should_stop: Callable[[int], bool] | None = None) -> Path | None:  # fmt: skip
    """Train (or, with `resume` = a run folder, continue) an unconditional GAN.

    Returns the run folder (None on processes other than 0). `should_stop(step)`, checked after
    every step, ends training early with a snapshot and resume checkpoint (Ctrl-C, time budgets).
    """
    o = options.resolved()
    cfg = GanConfig(**o.network)
    rank, world, device = _distributed(o.device)
    B = o.batch_size
    if B % world:
        raise GanprintError(f"--batch {B} does not split evenly over {world} processes")
    b = B // world
    group = min(cfg.mbstd_group, b)
    if group and b % group:
        raise GanprintError(f"the per-process batch {b} is not a multiple of the minibatch-stddev group {group}")
    source = open_training_source(o.data)

    torch.manual_seed(o.seed)
    G = Generator(cfg.generator_config()).to(device).train()
    D = Discriminator(cfg.discriminator_config()).to(device).train()
    if D.mbstd is not None:
        D.mbstd.group_size = group
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_G = lazy_adam(G.parameters(), o.lr, 0)
    opt_D = lazy_adam(D.parameters(), o.lr, o.r1_interval)

    start = 0
    if resume is not None:
        run_dir = Path(resume)
        state = checkpoint.load_training_checkpoint(run_dir / CHECKPOINT)
        if state.get("kind") != RUN_KIND:
            raise GanprintError(f"{run_dir / CHECKPOINT}: not an unconditional GAN checkpoint")
        if state.get("config") != cfg.to_dict() or state.get("batch_size") != B:
            raise GanprintError(f"{run_dir}: its checkpoint is of another configuration than the run's options")
        where = str(run_dir / CHECKPOINT)
        for module, key in ((G, "G"), (D, "D"), (G_ema, "G_ema")):
            checkpoint.load_state(module, state[key], where)
        opt_G.load_state_dict(state["opt_G"])
        opt_D.load_state_dict(state["opt_D"])
        start = int(state["step"])
    total = math.ceil(o.total_kimg * 1000 / B)
    if start > total:
        raise GanprintError(f"{resume}: already trained {start * B / 1000:g} kimg, more than --total-kimg {o.total_kimg:g}")

    G_t, D_t = G, D
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        G_t, D_t = (DistributedDataParallel(m, device_ids=ids, broadcast_buffers=False) for m in (G, D))

    run_dir, log = None, None
    grid_z = torch.randn(64, cfg.z_dim, generator=torch.Generator().manual_seed(o.seed + 99_991)).to(device)
    if rank == 0:
        run_dir = Path(resume) if resume is not None else new_run_dir(o.output_dir, _description(o))
        write_options(run_dir, {"kind": RUN_KIND, **dataclasses.asdict(o)})
        log = StatsLog(run_dir)
        log.truncate_after(start)
        if resume is None:
            save_grid(sample_images(source, cfg.resolution, 64), run_dir / "reals.png")

    def save(step: int) -> None:
        """Snapshot (EMA generator), grid and resume checkpoint; process 0 only."""
        kimg = step * B // 1000
        net = GanNetwork(cfg).to(device)
        net.G.load_state_dict(G_ema.state_dict())
        net.save_pretrained(run_dir / f"network-snapshot-{kimg:06d}",
                            extra={"training": {"kimg": step * B / 1000, "data": o.data, "run": run_dir.name}})  # fmt: skip
        with torch.no_grad():
            save_grid(to_unit(G_ema(grid_z)), run_dir / f"fakes-{kimg:06d}.png")
        checkpoint.save_training_checkpoint(run_dir / CHECKPOINT, {
            "kind": RUN_KIND, "config": cfg.to_dict(), "batch_size": B, "step": step,
            "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
            "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
        })  # fmt: skip

    tick, snapshot_every = _every(o.tick_kimg, B), _every(o.snapshot_kimg, B)
    g_params = list(G.parameters())
    noise_shapes = G.noise_shapes()
    part = slice(rank * b, (rank + 1) * b)
    sums: dict[str, float] = {}
    bar = tqdm(total=round(total * B / 1000, 3), initial=round(start * B / 1000, 3), unit="kimg",
               disable=not o.progress or rank != 0, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]")  # fmt: skip
    t0 = t_tick = time.time()
    step = start
    batches = training_batches(source, cfg.resolution, B, o.seed, start, total, rank, world, o.num_workers, o.strict)
    for step in range(start + 1, total + 1):
        g = _step_generator(o.seed, step)
        z = torch.randn(B, cfg.z_dim, generator=g)[part].to(device)
        flip = (torch.rand(B, generator=g) < 0.5)[part].to(device)
        noise = [torch.randn(B, *s, generator=g)[part].to(device) for s in noise_shapes]
        reals = from_unit(next(batches).to(device))
        if o.mirror_augment:
            reals = torch.where(flip.view(-1, 1, 1, 1), reals.flip(-1), reals)

        # G: non-saturating loss; D's weights get no gradient here.
        fakes = G_t(z, noise=noise)
        loss_G = F.softplus(-D(fakes)).mean()
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward(inputs=g_params)
        opt_G.step()

        # D: logistic loss, lazy R1 every r1_interval steps (weighted by the interval).
        do_r1 = o.r1_interval > 0 and o.gamma > 0 and step % o.r1_interval == 0
        d = discriminator_loss(D_t, reals, fakes, (o.gamma / 2) * o.r1_interval if do_r1 else 0.0)
        opt_D.zero_grad(set_to_none=True)
        d["loss"].backward()
        opt_D.step()

        nimg = step * B
        update_ema(G_ema, G, ema_beta(B, nimg, o.ema_kimg, o.ema_rampup))

        for key, value in (("loss/G", loss_G), ("loss/D", d["loss"]), ("scores/real", d["real_score"]),
                           ("scores/fake", d["fake_score"])):  # fmt: skip
            sums[key] = sums.get(key, 0.0) + value.item()
        if "r1" in d:
            sums["loss/r1"] = sums.get("loss/r1", 0.0) + d["r1"].item()
            sums["r1_n"] = sums.get("r1_n", 0) + 1
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
        bar.update(round(nimg / 1000, 3) - bar.n)
        last = step == total or stop
        if (tick and step % tick == 0) or last:
            n, r1_n = sums.pop("n"), sums.pop("r1_n", 0)
            values = {k: v / (r1_n if k == "loss/r1" else n) for k, v in sums.items()}
            sums.clear()
            now = time.time()
            values.update({"progress/kimg": nimg / 1000, "time/seconds": now - t0,
                           "speed/images_per_second": n * B / max(now - t_tick, 1e-9)})  # fmt: skip
            t_tick = now
            bar.set_postfix_str(f"G {values['loss/G']:.2f} D {values['loss/D']:.2f}")
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
