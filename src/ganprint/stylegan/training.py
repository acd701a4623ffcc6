"""What the StyleGAN2-style trainers share (`gan.train`: an unconditional GAN; `scalable.train`:
scalable fingerprinting), so that each trainer keeps its networks, its generator-side losses and its
snapshots in one visible loop, and the rest is written once here:

    options and presets    TrainingOptions (the loop options both trainers have), resolved from a preset
    the loss pieces        lazy_adam, logistic_loss, discriminator_loss / discriminator_step (+ lazy R1),
                           ema_beta / update_ema
    the run                TrainingRun: processes and batch split, data stream, resume checkpoint,
                           run folder, progress bar, stats ticks, snapshots, stopping; save_grid

Adam has lr 0.002, betas (0, 0.99), eps 1e-8; D's learning rate and betas are rescaled for the lazy
R1 (lr * 16/17, betas ** 16/17 with R1 every 16 steps), whose penalty is weighted by the interval.

Randomness is a function of (seed, step): the data order (`scalable.training_data.StepBatches`) and
every draw of a step come from a generator seeded by the step (`step_generator`) for the whole global
batch, and each process takes its slice (`TrainingRun.local`). A resumed run therefore continues
exactly as the uninterrupted one (the checkpoint holds weights, optimizer states, EMA and the step; no
RNG state needs saving), and N processes under torchrun compute what one process would with the same
global batch (DistributedDataParallel; gloo on CPU, nccl on CUDA; process 0 writes the run folder).
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
from ..runs import StatsLog, check_room_for_checkpoint, new_run_dir, write_options
from ..scalable.network import from_unit
from ..scalable.training_data import open_training_source, sample_images, training_batches
from ..visualize import save_png
from .networks import Discriminator, Generator

CHECKPOINT = "checkpoint.pt"


# ----------------------------------------------------------------------------- options


@dataclass
class TrainingOptions:
    """The options of the training loop itself; each trainer's options dataclass adds its own."""

    data: str  # training images: folder, zip, idx file, `ganprint dataset`, "fashion-mnist[:train]"
    output_dir: str = "runs"  # parent folder of the numbered run folders
    preset: str = "cpu32"  # networks and training defaults (the trainer's PRESETS)
    batch_size: int | None = None  # images per step over all processes (default: the preset's)
    gamma: float | None = None  # R1 weight (default: the preset's)
    lr: float | None = None  # Adam learning rate (default: the preset's, 0.002)
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
    network: dict | None = None  # network config fields overriding the preset (small experiments, tests)
    channels_last: bool | None = None  # networks in NHWC layout (None: on a CPU, where it trains 1.2x faster)

    def with_preset_defaults(self, training, config, **more):
        """A copy with the unset loop options taken from the preset's `training` defaults, `network`
        the full (validated) network `config` as JSON values, and the trainer's own `more` fields."""
        t = training
        ema_rampup = t.ema_rampup if self.ema_rampup is None else (self.ema_rampup or None)
        return dataclasses.replace(
            self, batch_size=self.batch_size or t.batch_size, gamma=t.gamma if self.gamma is None else self.gamma,
            lr=self.lr or t.lr, ema_kimg=self.ema_kimg or t.ema_kimg, ema_rampup=ema_rampup,
            total_kimg=self.total_kimg or t.total_kimg, network=json.loads(json.dumps(dataclasses.asdict(config))),
            **more,
        )  # fmt: skip


def network_config(config_class, fields: dict):
    """config_class(**fields).validate(), with unknown fields as a one-line error."""
    try:
        return config_class(**fields).validate()
    except TypeError as exc:
        raise GanprintError(f"bad network options ({exc})") from None


# ----------------------------------------------------------------------------- small pieces


def distributed(device: str) -> tuple[int, int, torch.device]:
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


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of every random draw of one step (the whole global batch)."""
    return torch.Generator().manual_seed((seed + 1) * 1_000_003 + step)


def every(kimg: float, batch: int) -> int:
    """Steps between events that come every `kimg` (0: never, only at the end)."""
    return max(1, round(kimg * 1000 / batch)) if kimg > 0 else 0


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """A grid of [0, 1] images; small images are enlarged (nearest) so the grid is >= 512 px wide."""
    grid = make_grid(images.detach().cpu().float().clamp(0, 1), nrow=nrow, padding=0)
    array = (grid * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(array)
    if image.width < 512:
        scale = max(1, 512 // image.width)
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    save_png(image, path)


def lazy_adam(params, lr: float, interval: int) -> torch.optim.Adam:
    """StyleGAN2's Adam for a network with a lazy regulariser every `interval` steps (0: none)."""
    ratio = interval / (interval + 1) if interval > 0 else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)


def logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict:
    """D's logistic loss ("loss/D") and its mean scores, in fp32 also under bf16 autocast."""
    real, fake = real_logits.float(), fake_logits.float()
    return {"loss/D": F.softplus(fake).mean() + F.softplus(-real).mean(), "scores/real": real.mean(),
            "scores/fake": fake.mean()}  # fmt: skip


def discriminator_loss(D: torch.nn.Module, reals: torch.Tensor, fakes: torch.Tensor, r1_gamma: float = 0.0,
                       r1_interval: int = 1) -> dict:  # fmt: skip
    """Logistic loss of D on reals and (detached) fakes in one pass; with r1_gamma > 0 also the R1
    penalty r1_gamma / 2 * |grad_x D(x)|^2 on the reals, times r1_interval (lazy: every r1_interval
    steps). Returns the tensors by their stats names ("loss/D" to minimise)."""
    x = reals.detach().requires_grad_(r1_gamma > 0)
    logits = D(torch.cat([x, fakes.detach()]))
    real = logits[: len(x)]
    out = logistic_loss(real, logits[len(x) :])
    if r1_gamma > 0:
        (grad,) = torch.autograd.grad(real.sum(), x, create_graph=True)
        out["loss/r1"] = grad.square().sum(dim=(1, 2, 3)).mean()
        out["loss/D"] = out["loss/D"] + out["loss/r1"] * (r1_gamma / 2) * r1_interval
    return out


def is_r1_step(step: int, r1_interval: int, gamma: float) -> bool:
    """Whether this D step adds the lazy R1 penalty (every r1_interval steps, when it has a weight)."""
    return r1_interval > 0 and gamma > 0 and step % r1_interval == 0


def discriminator_step(D: torch.nn.Module, opt_D: torch.optim.Optimizer, reals: torch.Tensor, fakes: torch.Tensor,
                       gamma: float, r1_interval: int, step: int) -> dict:  # fmt: skip
    """One optimizer step of D: logistic loss, and the lazy R1 penalty every r1_interval steps."""
    lazy_r1 = is_r1_step(step, r1_interval, gamma)
    out = discriminator_loss(D, reals, fakes, gamma if lazy_r1 else 0.0, r1_interval)
    opt_D.zero_grad(set_to_none=True)
    out["loss/D"].backward()
    opt_D.step()
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


# ----------------------------------------------------------------------------- the run


class TrainingRun:
    """The bookkeeping around a trainer's loop, on every process:

        run = TrainingRun(options, kind=..., ...)        # processes, batch split, data source
        G, D, G_ema = run.networks()                      # seeded weights
        run.restore(G=G, D=D, G_ema=G_ema, opt_G=..., opt_D=...)   # what checkpoint.pt holds
        G_t, D_t = run.ddp(G, D)                          # DistributedDataParallel under torchrun
        run.open_folder()                                 # process 0: run folder, options, log, reals
        for step in run.steps():
            ... draws (run.local), run.reals(flip), G step, discriminator_step, update_ema ...
            if run.end_step(step, losses, save):          # stats, bar, metrics, snapshots, stop
                break
        return run.finish()
    """

    def __init__(
        self,
        options: TrainingOptions,  # resolved options (batch, lengths, intervals, seed, data, device)
        *,
        kind: str,  # run kind in options.json and checkpoint.pt, checked on resume
        what: str,  # the kind of run for messages, e.g. "an unconditional GAN"
        config,  # the network config (.to_dict(), .generator_config(), ...); a resumed checkpoint must match
        description: str,  # run folder name after its number, e.g. "gan-cpu32-32px"
        resume: str | os.PathLike | None,  # run folder to continue, or None for a new run
        should_stop: Callable[[int], bool] | None,  # should_stop(step): end after this step, with a checkpoint
        postfix: Callable[[dict], str],  # progress bar text from a tick's mean values
        metrics_kimg: float = 0.0,  # kimg between end_step's evaluate() calls (0: only at the end)
    ):  # fmt: skip
        o = self.options = options
        self.kind, self.what, self.config, self.description = kind, what, config, description
        self.resume, self.should_stop, self.postfix = resume, should_stop, postfix
        self.rank, self.world, self.device = distributed(o.device)
        # oneDNN's CPU convolutions skip a layout conversion per call on NHWC weights and maps
        # (benchmarks/bench_gan_speed.py); the arithmetic is the same fp32.
        nhwc = self.device.type == "cpu" if o.channels_last is None else o.channels_last
        self.memory_format = torch.channels_last if nhwc else torch.contiguous_format
        self.batch = B = o.batch_size
        if B % self.world:
            raise GanprintError(f"--batch {B} does not split evenly over {self.world} processes")
        self.process_batch = b = B // self.world
        self.mbstd_group = min(config.mbstd_group, b)
        if self.mbstd_group and b % self.mbstd_group:
            raise GanprintError(f"the per-process batch {b} is not a multiple of the minibatch-stddev group {self.mbstd_group}")  # fmt: skip
        self.part = slice(self.rank * b, (self.rank + 1) * b)
        self.source = open_training_source(o.data)
        self.tick = every(o.tick_kimg, B)  # steps between stats lines
        self.metric_every = every(metrics_kimg, B)
        self.snapshot_every = every(o.snapshot_kimg, B)
        self.total = math.ceil(o.total_kimg * 1000 / B)
        self.start = self.step = 0
        self.seconds_before = 0.0  # training time of the run before this process started (resume)
        self.state: dict = {}
        self.dir: Path | None = None
        self.log: StatsLog | None = None
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ set-up
    def networks(self) -> tuple[Generator, Discriminator, Generator]:
        """G, D and the moving average of G, with weights seeded by the options' seed (further
        networks made next continue the same random stream)."""
        torch.manual_seed(self.options.seed)
        G = Generator(self.config.generator_config()).to(self.device, memory_format=self.memory_format).train()
        D = Discriminator(self.config.discriminator_config()).to(self.device, memory_format=self.memory_format).train()
        if D.mbstd is not None:
            D.mbstd.group_size = self.mbstd_group
        G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        return G, D, G_ema

    def restore(self, **state: torch.nn.Module | torch.optim.Optimizer) -> None:
        """Name the networks and optimizers checkpoint.pt holds; when resuming, load them from it."""
        self.state = state
        if self.resume is not None:
            path = Path(self.resume) / CHECKPOINT
            saved = checkpoint.load_training_checkpoint(path)
            if saved.get("kind") != self.kind:
                raise GanprintError(f"{path}: not {self.what} checkpoint")
            if saved.get("config") != self.config.to_dict() or saved.get("batch_size") != self.batch:
                raise GanprintError(f"{self.resume}: its checkpoint is of another configuration than the run's options")
            for key, item in state.items():
                if isinstance(item, torch.nn.Module):
                    checkpoint.load_state(item, saved[key], str(path))
                else:
                    item.load_state_dict(saved[key])
            self.start = self.step = int(saved["step"])
            self.seconds_before = float(saved.get("seconds", 0.0))
        if self.start > self.total:
            raise GanprintError(f"{self.resume}: already trained {self.start * self.batch / 1000:g} kimg, more than "
                                f"--total-kimg {self.options.total_kimg:g}")  # fmt: skip

    def ddp(self, *modules: torch.nn.Module) -> tuple[torch.nn.Module, ...]:
        """The modules to train through: DistributedDataParallel wrappers with several processes."""
        if self.world == 1:
            return modules
        ids = [self.device.index] if self.device.type == "cuda" else None
        return tuple(DistributedDataParallel(m, device_ids=ids, broadcast_buffers=False) for m in modules)

    def open_folder(self) -> Path | None:
        """Process 0: the run folder (new, or the resumed one) with options.json, the stats log (cut
        back to the checkpoint's step) and reals.png. None on other processes."""
        if self.rank != 0:
            return None
        o = self.options
        reals = sample_images(self.source, self.config.resolution, 64)  # checks the data before a folder is made
        self.dir = Path(self.resume) if self.resume is not None else new_run_dir(o.output_dir, self.description)
        check_room_for_checkpoint(self.dir, *getattr(self, "state", {}).values())
        write_options(self.dir, {"kind": self.kind, **dataclasses.asdict(o)})
        self.log = StatsLog(self.dir)
        self.log.truncate_after(self.start)
        if self.resume is None:
            save_grid(reals, self.dir / "reals.png")
        return self.dir

    # ------------------------------------------------------------------ the steps
    def steps(self) -> range:
        """Steps start+1 .. total; starts the progress bar, the clock and the data stream."""
        o, B = self.options, self.batch
        self.bar = tqdm(total=round(self.total * B / 1000, 3), initial=round(self.start * B / 1000, 3), unit="kimg",
                        disable=not o.progress or self.rank != 0, dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]")  # fmt: skip
        self.t0 = time.time() - self.seconds_before  # the run's start, across resumes
        self.t_tick = time.time()
        self.batches = training_batches(self.source, self.config.resolution, B, o.seed, self.start, self.total,
                                        self.rank, self.world, o.num_workers, o.strict)  # fmt: skip
        return range(self.start + 1, self.total + 1)

    def local(self, draw: torch.Tensor) -> torch.Tensor:
        """This process's part of a draw for the global batch, on the device."""
        return draw[self.part].to(self.device)

    def reals(self, flip: torch.Tensor) -> torch.Tensor:
        """This process's training images of the step in [-1, 1], mirrored where `flip` (--mirror-augment)."""
        reals = from_unit(next(self.batches).to(self.device))
        if self.options.mirror_augment:
            reals = torch.where(flip.view(-1, 1, 1, 1), reals.flip(-1), reals)
        return reals

    def seconds(self) -> float:
        """Training time of the run so far, across resumes."""
        return time.time() - self.t0

    def end_step(self, step: int, values: dict, save: Callable[[int], None],
                 evaluate: Callable[[int], dict] | None = None) -> bool:  # fmt: skip
        """After each step: add `values` (tensors or numbers; each averaged over the steps that gave
        it) to the tick, agree on stopping over all processes, and on process 0 move the bar, write
        the tick's means to stats.jsonl every tick_kimg, evaluate() every metrics_kimg and save()
        every snapshot_kimg (each also at the last step). True: leave the loop."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + (value.item() if torch.is_tensor(value) else value)
            self.counts[key] = self.counts.get(key, 0) + 1
        self.counts["steps"] = self.counts.get("steps", 0) + 1
        self.step = step
        stop = bool(self.should_stop and self.should_stop(step))
        if self.world > 1:  # every process must stop at the same step
            flag = torch.tensor([float(stop)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        if self.rank != 0:
            return stop
        nimg = step * self.batch
        self.bar.update(round(nimg / 1000, 3) - self.bar.n)
        last = step == self.total or stop
        line = {}
        if (self.tick and step % self.tick == 0) or last:
            line = {key: total / self.counts[key] for key, total in self.sums.items()}
            now = time.time()
            line.update({"progress/kimg": nimg / 1000, "time/seconds": now - self.t0,
                         "speed/images_per_second": self.counts["steps"] * self.batch / max(now - self.t_tick, 1e-9)})  # fmt: skip
            self.sums.clear()
            self.counts.clear()
            self.t_tick = now
            self.bar.set_postfix_str(self.postfix(line))
        if evaluate is not None and ((self.metric_every and step % self.metric_every == 0) or last):
            line.update(evaluate(step))
        if line:
            self.log.write(step, line)
        if (self.snapshot_every and step % self.snapshot_every == 0) or last:
            save(step)
        return stop

    def save_snapshot(self, step: int, network, grids: dict[str, torch.Tensor]) -> None:
        """Process 0: the snapshot `network` (config.json + model.safetensors), the image grids by file
        name prefix ([0, 1] images) and the resume checkpoint, each named by the kimg."""
        kimg = step * self.batch // 1000
        network.save_pretrained(self.dir / f"network-snapshot-{kimg:06d}", extra={"training": {
            "kimg": step * self.batch / 1000, "data": self.options.data, "run": self.dir.name}})  # fmt: skip
        for prefix, images in grids.items():
            save_grid(images, self.dir / f"{prefix}-{kimg:06d}.png")
        checkpoint.save_training_checkpoint(self.dir / CHECKPOINT, {
            "kind": self.kind, "config": self.config.to_dict(), "batch_size": self.batch, "step": step,
            "seconds": self.seconds(), **{key: item.state_dict() for key, item in self.state.items()},
        })  # fmt: skip

    def finish(self) -> Path | None:
        """Close the bar and the log and say how the run ended; the run folder (None on other processes)."""
        self.bar.close()
        if self.rank == 0:
            self.log.close()
            o, B = self.options, self.batch
            if self.start == self.total:
                tqdm.write(f"nothing to do: the run already has {o.total_kimg:g} kimg; give a larger --total-kimg")
            elif self.step < self.total:
                tqdm.write(f"stopped at {self.step * B / 1000:.1f} kimg; continue with --resume {self.dir}")
        return self.dir
