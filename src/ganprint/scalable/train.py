"""Training scalable fingerprinting: one readable loop, exact resume, data-parallel under torchrun.

Each step draws, for every sample, a latent z ~ N(0, I), a fingerprint code c and an independent
code c' (fresh fair bits), and minimises (Yu et al., ICLR 2022):

    G and F:  softplus(-D(G(z, c)))                           adversarial, weight 1
              + 2 * mean (G(z, c) - G(z, c'))^2                consistency (--decoupleL2-weight)
              + 1 * mean (z - F_z(G(z, c)))^2                  z reconstruction (--latentsRecL2-weight)
              + 2 * BCE(F_c(G(z, c)), c)                       c reconstruction (--watermarkCls-weight)
    D:        softplus(D(G(z, c))) + softplus(-D(x))           + lazy R1: every 16 steps
              16 * gamma / 2 * |grad_x D(x)|^2

Beyond the paper (the CPU presets' defaults): with `decode_both` F also reads G(z, c') with its code
(the consistency term generates it anyway), and with `decode_uint8` F reads the images clamped and
rounded to 8 bits as PNGs store them (the rounding passes gradients straight through, the clamp does
not); docs/scalable.md ("Round 3") has the measurements. With `paired_code_weight` (beyond the paper,
needs `decode_both`) F also minimises the bit cross-entropy of its logit difference between G(z, c)
and G(z, c') where the codes differ: the shared content cancels, so F finds the code early on every
seed; G does not get this loss (it cost the samples: docs/scalable.md, "Code start"); with
`paired_code_kimg` only until the code has started.

Immunized training (`augment`, ganprint.augment): F reads G(z, c) through differentiable perturbations
(noise, blur, JPEG, crop, colour), one per image at a strength ramped in over `augment_ramp` steps, so
G learns to put the code where the attacks do not reach; their randomness is drawn from the step's
generator after everything else (a run without them is unchanged).

G, F and D each have Adam (lr 0.002, betas (0, 0.99), eps 1e-8); D's learning rate and betas are
rescaled for the lazy R1 (lr * 16/17, betas ** 16/17). An exponential moving average of G (half-life
`ema_kimg`) is what snapshots, grids and metrics use. G(z, c) and G(z, c') run as one batch and share
their noise maps, so the consistency term measures the effect of the code alone. Path-length
regularisation (optional in the paper) is not implemented.

Randomness is a function of (seed, step): the data order (`training_data.StepBatches`), mirroring, z,
c, c' and the noise maps are drawn from a generator seeded by the step for the whole global batch, and
each process takes its slice. A resumed run therefore continues exactly as the uninterrupted one (the
checkpoint holds weights, optimizer states, EMA and the image count; no RNG state needs saving), and
N processes compute what one process would with the same global batch. What the loop shares with
`gan.train` (processes, D step with lazy R1, EMA, checkpoint, run folder, stats) is `stylegan.training`.

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
        metric-bit_accuracy.txt       one line per evaluation (bit accuracy, latent share: metrics.py)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import runs
from ..augment import Augmenter
from ..errors import GanprintError
from ..io import atomic_write_text
from ..stylegan import Decoder, Generator
from ..stylegan.training import TrainingOptions, TrainingRun, discriminator_step, lazy_adam, network_config
from ..stylegan.training import ema_beta, step_generator, update_ema
from .config import ScalableConfig, parse_res_range, preset
from .metrics import describe_latent_share, latent_share
from .network import ScalableNetwork, from_unit, quantize_straight_through, quantize_unit, to_unit

RUN_KIND = "ganprint.scalable.train"


@dataclass
class TrainOptions(TrainingOptions):
    """The loop options of `stylegan.training.TrainingOptions` and these. Presets: config.PRESETS;
    `network` overrides ScalableConfig fields."""

    fingerprint_size: int | None = None  # bits of the code c (default: the preset's, 128)
    res_modulated_range: str | None = None  # e.g. "4-32": resolutions modulated by c (default: all)
    z_styles: bool | None = None  # z also makes styles at every layer (ScalableConfig.z_styles; default: preset's)
    carrier_std: float | None = None  # carrier maps' init std (ScalableConfig.carrier_std; 0: none; default: preset's)
    consistency_weight: float = 2.0  # mean (G(z,c) - G(z,c'))^2 (original --decoupleL2-weight)
    z_reconstruction_weight: float = 1.0  # mean (z - F_z)^2 (original --latentsRecL2-weight)
    c_reconstruction_weight: float | None = None  # BCE of F's c logits (--watermarkCls-weight; default: the preset's)
    paired_code_weight: float = 0.0  # with decode_both: F's BCE of its logit differences, G(z, c) vs G(z, c')
    paired_code_kimg: float | None = None  # the paired loss only for the first this many kimg (None: throughout)
    decoder_lr: float | None = None  # Adam learning rate of F (default: the preset's, else lr)
    augment: str | None = None  # immunized training: perturbations before F ("default" or a list, ganprint.augment)
    augment_ramp: int = 1000  # steps over which the perturbation strength grows from 0 to full
    decode_both: bool | None = None  # F also reads G(z, c'): twice the code examples per G pass (default: preset's)
    decode_uint8: bool | None = None  # F reads images rounded to 8 bits, straight-through (default: preset's)
    code_grad_scope: str = "all"  # G's parameters the code loss trains: "all", or "code" (mapping + affines only)
    code_content_grad: float = 0.0  # with scope "code": the share of the code loss's gradient the other G parameters get
    metrics_kimg: float = 10.0  # kimg between bit-accuracy evaluations (0: only at the end)
    metric_images: int = 1024  # generated images per bit-accuracy evaluation

    def resolved(self) -> "TrainOptions":
        """A copy with every default taken from the preset and `network` the full network config."""
        p = preset(self.preset)
        net = dataclasses.asdict(p.network)
        net.update(self.network or {})
        if self.fingerprint_size is not None:
            net["fingerprint_size"] = self.fingerprint_size
        if self.z_styles is not None:
            net["z_styles"] = self.z_styles
        if self.carrier_std is not None:
            net["carrier_std"] = self.carrier_std
        if self.res_modulated_range is not None:
            net["res_modulated_range"] = parse_res_range(self.res_modulated_range)
        elif "res_modulated_range" not in (self.network or {}):
            net["res_modulated_range"] = (4, net["resolution"])
        config = network_config(ScalableConfig, net)
        t = p.training
        return self.with_preset_defaults(
            t, config, fingerprint_size=config.fingerprint_size,
            res_modulated_range=f"{config.res_modulated_range[0]}-{config.res_modulated_range[1]}", z_styles=config.z_styles,
            carrier_std=config.carrier_std, decoder_lr=self.decoder_lr or t.decoder_lr or self.lr or t.lr,
            c_reconstruction_weight=t.c_reconstruction_weight if self.c_reconstruction_weight is None
            else self.c_reconstruction_weight,
            decode_both=t.decode_both if self.decode_both is None else self.decode_both,
            decode_uint8=t.decode_uint8 if self.decode_uint8 is None else self.decode_uint8,
        )  # fmt: skip

    def network_config(self) -> ScalableConfig:
        return ScalableConfig(**self.resolved().network)


# Options added after runs were made: an options.json without them means what the loop did then.
_LEGACY = {"decode_both": False, "decode_uint8": False, "code_grad_scope": "all", "code_content_grad": 0.0,
           "network": {"carrier_std": 0.0}}  # fmt: skip
CODE_GRAD_SCOPES = ("all", "code")


def code_parameters(G: Generator) -> list[torch.nn.Parameter]:
    """G's parameters that only shape how c acts: the mapping network (c -> w) and every layer's
    affine (w -> styles). The rest (z's input layer, z's mapping network and affines with z_styles,
    convolutions, carrier maps, noise strengths) makes the content."""
    return [p for name, p in G.named_parameters() if name.startswith("mapping.") or ".affine." in name]


def paired_code_loss(logits: torch.Tensor, logits2: torch.Tensor, c: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """Bit cross-entropy of the logit difference F_c(G(z, c)) - F_c(G(z, c')) on the bits where c and c'
    differ (target: c). The two images share z and noise, so what F reads from the content cancels in the
    difference and the gradient carries the code alone: the decoder finds the code's trace long before
    it can read absolute bits through the content (docs/scalable.md, "Code start")."""
    differ = (c != c2).float()
    bce = F.binary_cross_entropy_with_logits(logits - logits2, c, reduction="none")
    return (bce * differ).sum() / differ.sum().clamp(min=1)


def load_run_options(run_dir: str | os.PathLike) -> TrainOptions:
    """The options of an earlier run, for --resume."""
    return runs.load_run_options(run_dir, RUN_KIND, TrainOptions, "a scalable fingerprinting", legacy=_LEGACY)


# ----------------------------------------------------------------------------- metrics


@torch.no_grad()
def bit_accuracy(G: Generator, F_: Decoder, count: int, seed: int = 123, batch: int = 128,
                 augmenter: Augmenter | None = None) -> tuple[float, float]:  # fmt: skip
    """Mean bit accuracy of F on `count` images of G with fresh random codes (stored noise): on the
    float outputs (as the paper) and on the images rounded to 8 bits (as saved PNGs). With an
    augmenter, every image is first perturbed at full strength (a check of immunity)."""
    device = next(G.parameters()).device
    g = torch.Generator().manual_seed(seed)
    hits = hits8 = total = 0
    for start in range(0, count, batch):
        n = min(batch, count - start)
        z = torch.randn(n, G.config.z_dim, generator=g).to(device)
        c = torch.randint(0, 2, (n, G.config.c_dim), generator=g).float().to(device)
        img = G(z, c)
        if augmenter is not None:
            img = from_unit(augmenter.full_strength(to_unit(img), g))
        hits += ((F_(img)[1] > 0).float() == c).sum().item()
        hits8 += ((F_(from_unit(quantize_unit(to_unit(img))))[1] > 0).float() == c).sum().item()
        total += c.numel()
    return hits / total, hits8 / total


# ----------------------------------------------------------------------------- training


def train_scalable(
    options: TrainOptions,  # what to train: data, preset, loss weights, loop options
    resume: str | os.PathLike | None = None,  # run folder to continue exactly where its checkpoint left off
    should_stop: Callable[[int], bool] | None = None,  # should_stop(step): end after this step (Ctrl-C)
) -> Path | None:
    """Train a scalable fingerprinting GAN (G(z, c), its decoder F, D), or continue a run; the run
    folder (None on processes other than 0). A stop ends with a snapshot and a resume checkpoint."""
    o = options.resolved()
    if o.paired_code_kimg is not None and not o.paired_code_weight:
        raise GanprintError("--paired-code-kimg needs --paired-code-weight above 0")
    if o.paired_code_weight and not o.decode_both:
        raise GanprintError("--paired-code-weight needs --decode-both true: F must read G(z, c) and G(z, c')")
    if o.code_grad_scope not in CODE_GRAD_SCOPES:
        raise GanprintError(f"code_grad_scope {o.code_grad_scope!r}: choose one of {', '.join(CODE_GRAD_SCOPES)}")
    if not 0.0 <= o.code_content_grad <= 1.0:
        raise GanprintError(f"code_content_grad {o.code_content_grad}: must be between 0 and 1")
    cfg = ScalableConfig(**o.network)
    run = TrainingRun(o, kind=RUN_KIND, what="a scalable fingerprinting", config=cfg, resume=resume,
                      should_stop=should_stop, metrics_kimg=o.metrics_kimg,
                      description=f"scalable-{o.preset}-{cfg.resolution}px-{o.fingerprint_size}b",
                      postfix=lambda tick: f"bit acc {tick['train/bit_accuracy']:.3f}")  # fmt: skip
    if o.code_grad_scope != "all" and run.world > 1:  # two backward passes per step: DDP's hooks expect one
        raise GanprintError("--code-grad-scope code trains in one process only; run it without torchrun")
    if o.paired_code_weight and run.world > 1:  # F's own backward pass: DDP's hooks expect one
        raise GanprintError("--paired-code-weight trains in one process only; run it without torchrun")
    augmenter = Augmenter.from_spec(o.augment, o.augment_ramp) if o.augment else None
    B, b, device = run.batch, run.process_batch, run.device
    L = cfg.fingerprint_size
    G, D, G_ema = run.networks()
    # Seeded: made right after G and D.
    F_ = Decoder(cfg.decoder_config(), cfg.z_dim, L).to(device, memory_format=run.memory_format).train()
    opt_G = lazy_adam(G.parameters(), o.lr, 0)
    opt_F = lazy_adam(F_.parameters(), o.decoder_lr or o.lr, 0)
    opt_D = lazy_adam(D.parameters(), o.lr, o.r1_interval)
    run.restore(G=G, D=D, F=F_, G_ema=G_ema, opt_G=opt_G, opt_D=opt_D, opt_F=opt_F)
    G_t, D_t, F_t = run.ddp(G, D, F_)
    grid_g = torch.Generator().manual_seed(o.seed + 99_991)
    grid_z = torch.randn(64, cfg.z_dim, generator=grid_g).to(device)
    grid_c = torch.randint(0, 2, (64, L), generator=grid_g).float().to(device)
    run_dir = run.open_folder()

    def save(step: int) -> None:
        """Snapshot (inference weights: G EMA + F), grids and the resume checkpoint; process 0 only."""
        net = ScalableNetwork(cfg).to(device)
        net.G.load_state_dict(G_ema.state_dict())
        net.F.load_state_dict(F_.state_dict())
        with torch.no_grad():
            grids = {"fakes-arbitrary": to_unit(G_ema(grid_z, grid_c)),
                     "fakes-fingerprints-same": to_unit(G_ema(grid_z, grid_c[:1].expand(64, -1))),
                     "fakes-latents-same": to_unit(G_ema(grid_z[:1].expand(64, -1), grid_c))}  # fmt: skip
        run.save_snapshot(step, net, grids)

    def evaluate(step: int) -> dict:
        acc, acc8 = bit_accuracy(G_ema, F_, o.metric_images)
        metrics = {"metrics/bit_accuracy": acc, "metrics/bit_accuracy_uint8": acc8}
        line = (f"kimg {step * B / 1000:<8.1f} time {run.seconds() / 60:6.1f} min  bit_accuracy {acc:.4f}  "
                f"bit_accuracy_uint8 {acc8:.4f}")  # fmt: skip
        if augmenter is not None:
            metrics["metrics/bit_accuracy_augmented"] = bit_accuracy(G_ema, F_, o.metric_images, augmenter=augmenter)[0]
            line += f"  bit_accuracy_augmented {metrics['metrics/bit_accuracy_augmented']:.4f}"
        share = latent_share(G_ema, cfg.z_dim, L, device=next(G_ema.parameters()).device)
        metrics["metrics/latent_share"] = share
        line += "  " + describe_latent_share(share, "latent_share")
        F_.train()
        tqdm.write(line)
        path = run_dir / "metric-bit_accuracy.txt"
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        atomic_write_text(path, old + line + "\n")
        return metrics

    gf_params = [*G.parameters(), *F_.parameters()]
    code_params = [*code_parameters(G), *F_.parameters()]
    code_ids = {id(p) for p in code_params}
    content_params = [p for p in G.parameters() if id(p) not in code_ids]
    noise_shapes = G.noise_shapes()
    for step in run.steps():
        g = step_generator(o.seed, step)
        z = run.local(torch.randn(B, cfg.z_dim, generator=g))
        c = run.local(torch.randint(0, 2, (B, L), generator=g).float())
        c2 = run.local(torch.randint(0, 2, (B, L), generator=g).float())
        flip = run.local(torch.rand(B, generator=g) < 0.5)
        noise = [run.local(torch.randn(B, *s, generator=g)).repeat(2, 1, 1, 1) for s in noise_shapes]
        reals = run.reals(flip)

        # G and F: one generator pass for (z, c) and (z, c'); D's weights get no gradient here.
        fakes = G_t(torch.cat([z, z]), torch.cat([c, c2]), noise=noise)
        fake, fake2 = fakes[:b], fakes[b:]
        adversarial = F.softplus(-D(fake)).mean()
        consistency = (fake - fake2).square().mean()
        seen, codes, latents = (fakes, torch.cat([c, c2]), torch.cat([z, z])) if o.decode_both else (fake, c, z)
        if o.decode_uint8:
            seen = quantize_straight_through(seen)
        if augmenter is not None:  # one draw per half, so the halves' perturbations are independent
            seen = torch.cat([from_unit(augmenter(to_unit(half), step, g, batch_size=B, part=run.part))
                              for half in seen.split(b)])  # fmt: skip
        z_hat, codes_logits = F_t(seen)
        c_logits = codes_logits[:b]
        z_rec = (z_hat - latents).square().mean()
        c_rec = F.binary_cross_entropy_with_logits(codes_logits, codes)
        code_loss = o.c_reconstruction_weight * c_rec
        pairing = o.paired_code_weight and (o.paired_code_kimg is None or step * B < 1000 * o.paired_code_kimg)
        paired = paired_code_loss(c_logits, codes_logits[b:], c, c2) if pairing else None
        loss_G = adversarial + o.consistency_weight * consistency + o.z_reconstruction_weight * z_rec
        opt_G.zero_grad(set_to_none=True)
        opt_F.zero_grad(set_to_none=True)
        if paired is not None:  # F learns to find the code; G's pull towards it is left as it was
            (o.paired_code_weight * paired).backward(inputs=list(F_.parameters()), retain_graph=True)
        if o.code_grad_scope == "all":
            (loss_G + code_loss).backward(inputs=gf_params)
        else:  # the code loss may not (or only a little) bend what G draws towards easily coded content
            share = o.code_content_grad
            code_loss.backward(inputs=gf_params if share else code_params, retain_graph=True)
            for p in content_params if share else ():
                if p.grad is not None:
                    p.grad.mul_(share)
            loss_G.backward(inputs=gf_params)
        opt_G.step()
        opt_F.step()

        # D, with the lazy R1 penalty on the real images every r1_interval steps.
        d = discriminator_step(D_t, opt_D, reals, fake, o.gamma, o.r1_interval, step)
        update_ema(G_ema, G, ema_beta(B, step * B, o.ema_kimg, o.ema_rampup))

        train_acc = ((c_logits.detach() > 0).float() == c).float().mean().item()
        losses = {"loss/G_adversarial": adversarial, "loss/consistency": consistency, "loss/z_reconstruction": z_rec,
                  "loss/c_reconstruction": c_rec, **d, "train/bit_accuracy": train_acc}  # fmt: skip
        if paired is not None:
            losses["loss/paired_code"] = paired
        if run.end_step(step, losses, save, evaluate):
            break
    return run.finish()
