"""Training an unconditional StyleGAN2-style GAN on any image set (the "any generative model" of
artificial fingerprinting: train it on fingerprinted images and its outputs carry the fingerprint).

Losses (Karras et al. 2020): non-saturating logistic loss, softplus(-D(G(z))) for G and
softplus(D(G(z))) + softplus(-D(x)) for D, plus the lazy R1 penalty 16 * gamma / 2 * |grad_x D(x)|^2
every `r1_interval` (16) steps. Adam (lr 0.002, betas (0, 0.99), eps 1e-8); D's lr and betas are
rescaled for the lazy R1 (lr * 16/17, betas ** 16/17). An exponential moving average of G (half-life
`ema_kimg`, optionally ramped up) is what snapshots, grids and generation use.

What it shares with scalable fingerprinting is imported, not copied: the networks
(`ganprint.stylegan`), the deterministic data stream (`scalable.training_data`), and the loss pieces,
per-step seeding, processes, checkpoint and run folder (`stylegan.training`). Randomness is a function
of (seed, step), so a resumed run continues exactly as the uninterrupted one, and N processes under
torchrun compute what one process would with the same global batch.

    <output_dir>/00000-gan-cpu32-32px/
        options.json                  every option (resolved), reused by --resume
        reals.png                     training images
        fakes-000050.png              64 fixed latents through the EMA generator (stored noise)
        network-snapshot-000050/      inference weights: config.json + model.safetensors (G EMA)
        checkpoint.pt                 resume checkpoint (replaced atomically at each snapshot)
        stats.jsonl, events.out.*     losses, discriminator scores, speed (TensorBoard)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .. import runs
from ..errors import GanprintError
from ..scalable.network import to_unit
from ..stylegan.training import TrainingOptions, TrainingRun, discriminator_step, lazy_adam, network_config
from ..stylegan.training import ema_beta, is_r1_step, logistic_loss, step_generator, update_ema
from .network import GanConfig, GanNetwork, preset

RUN_KIND = "ganprint.gan.train"


PRECISIONS = ("fp32", "bf16")


@dataclass
class GanTrainOptions(TrainingOptions):
    """The loop options of `stylegan.training.TrainingOptions` and the arithmetic precision. Its
    presets: gan.network.PRESETS; `network` overrides GanConfig fields."""

    precision: str = "fp32"  # "bf16": G and D forward passes under bfloat16 autocast (R1 steps stay fp32)

    def resolved(self) -> "GanTrainOptions":
        """A copy with every default taken from the preset and `network` the full network config."""
        if self.precision not in PRECISIONS:
            raise GanprintError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        p = preset(self.preset)
        net = {**dataclasses.asdict(p.network), **(self.network or {})}
        net.pop("kind", None)
        return self.with_preset_defaults(p.training, network_config(GanConfig, net))


# Runs made before an option existed resume with the behaviour they were trained with.
_LEGACY = {"network": {"carrier_std": 0.0}}


def load_run_options(run_dir: str | os.PathLike) -> GanTrainOptions:
    """The options of an earlier GAN run, for --resume."""
    return runs.load_run_options(run_dir, RUN_KIND, GanTrainOptions, "an unconditional GAN", legacy=_LEGACY)


# ----------------------------------------------------------------------------- the loop


def train_gan(
    options: GanTrainOptions,  # what to train: data, preset, loop options
    resume: str | os.PathLike | None = None,  # run folder to continue exactly where its checkpoint left off
    should_stop: Callable[[int], bool] | None = None,  # should_stop(step): end after this step (Ctrl-C)
) -> Path | None:
    """Train an unconditional GAN, or continue one; its run folder (None on processes other than 0).
    A stop (should_stop, Ctrl-C, a time budget) ends with a snapshot and a resume checkpoint."""
    o = options.resolved()
    cfg = GanConfig(**o.network)
    run = TrainingRun(o, kind=RUN_KIND, what="an unconditional GAN", config=cfg, resume=resume, should_stop=should_stop,
                      description=f"gan-{o.preset}-{cfg.resolution}px",
                      postfix=lambda tick: f"G {tick['loss/G']:.2f} D {tick['loss/D']:.2f}")  # fmt: skip
    B, device = run.batch, run.device
    G, D, G_ema = run.networks()
    opt_G = lazy_adam(G.parameters(), o.lr, 0)
    opt_D = lazy_adam(D.parameters(), o.lr, o.r1_interval)
    run.restore(G=G, D=D, G_ema=G_ema, opt_G=opt_G, opt_D=opt_D)
    G_t, D_t = run.ddp(G, D)
    grid_z = torch.randn(64, cfg.z_dim, generator=torch.Generator().manual_seed(o.seed + 99_991)).to(device)
    run.open_folder()

    def save(step: int) -> None:
        """Snapshot (EMA generator), grid and resume checkpoint; process 0 only."""
        net = GanNetwork(cfg).to(device)
        net.G.load_state_dict(G_ema.state_dict())
        with torch.no_grad():
            grids = {"fakes": to_unit(G_ema(grid_z))}
        run.save_snapshot(step, net, grids)

    g_params, d_params = list(G.parameters()), list(D.parameters())
    noise_shapes = G.noise_shapes()
    bf16 = o.precision == "bf16"
    for step in run.steps():
        g = step_generator(o.seed, step)
        z = run.local(torch.randn(B, cfg.z_dim, generator=g))
        flip = run.local(torch.rand(B, generator=g) < 0.5)
        noise = [run.local(torch.randn(B, *s, generator=g)) for s in noise_shapes]
        reals = run.reals(flip)

        r1_step = is_r1_step(step, o.r1_interval, o.gamma)
        # One pass of D over the fakes serves both losses, since D does not change between them (a
        # third less of D's forward work); R1 steps and torchrun keep the two passes below.
        shared = run.world == 1 and not r1_step

        # G: non-saturating loss; D's weights get no gradient here.
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            fakes = G_t(z, noise=noise).float()
            fake_logits = D(fakes).float()
            loss_G = F.softplus(-fake_logits).mean()
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward(inputs=g_params, retain_graph=shared)

        # D: logistic loss, lazy R1 every r1_interval steps (weighted by the interval; in fp32: its
        # double backward is where bfloat16's 8-bit mantissa would hurt most).
        if shared:
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                d = logistic_loss(D(reals), fake_logits)
            opt_D.zero_grad(set_to_none=True)
            d["loss/D"].backward(inputs=d_params)
            opt_G.step()
            opt_D.step()
        else:
            opt_G.step()
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16 and not r1_step):
                d = discriminator_step(D_t, opt_D, reals, fakes, o.gamma, o.r1_interval, step)
        update_ema(G_ema, G, ema_beta(B, step * B, o.ema_kimg, o.ema_rampup))
        if run.end_step(step, {"loss/G": loss_G, **d}, save):
            break
    return run.finish()
