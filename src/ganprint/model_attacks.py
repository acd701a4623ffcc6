"""Model-level attacks: perturb a network's weights, then check that its images still carry the
fingerprint (the papers' weight-noise and quantization experiments, plus pruning and fine-tuning).

    from ganprint.model_attacks import MODEL_ATTACKS
    noisy = MODEL_ATTACKS["weight_noise"](generator, 0.05, seed=0)     # a perturbed copy
    tuned = MODEL_ATTACKS["finetune"](generator, 100, seed=0, loss_fn=clean_loss)

Each attack returns a perturbed deep copy (the input model is left untouched) in the same train/eval
mode, is deterministic given `seed`, and works on any nn.Module. "Weights" are the floating-point
parameters with two or more dimensions (convolution kernels, dense matrices); biases and gains stay
as they are, as deployment quantization and pruning usually leave them.

`finetune` is generic: it takes `loss_fn(model, generator) -> scalar loss` on clean data (for a GAN,
its training loss on clean images; for a codec's encoder, reproducing clean images), runs Adam for
the given number of steps and returns the tuned copy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import prune

from .attacks import AttackLevel, LevelledAttack
from .errors import GanprintError

FinetuneLoss = Callable[[nn.Module, torch.Generator], torch.Tensor]


def weight_tensors(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters model attacks change: floating point, two or more dimensions."""
    return [(n, p) for n, p in model.named_parameters() if p.is_floating_point() and p.ndim >= 2]


@dataclass(frozen=True)
class ModelAttack(LevelledAttack):
    """A named perturbation of a network's weights whose strength is one number."""

    fn: Callable[..., None]  # fn(model, value, generator, **context): changes `model` in place
    kind = "model"

    def __call__(self, model: nn.Module, value: float, seed: int = 0, **context) -> nn.Module:
        value = self.check(value)
        attacked = copy.deepcopy(model)
        if self.identity is not None and value == self.identity:
            return attacked
        g = torch.Generator().manual_seed(int(seed))
        self.fn(attacked, value, g, **context)
        return attacked


@torch.no_grad()
def _weight_noise(model: nn.Module, relative_std: float, g: torch.Generator, **_) -> None:
    # Relative to each tensor's own spread, so one level means the same for any architecture and
    # parametrization (equalized learning rate stores N(0,1) weights, plain convs store tiny ones).
    for _, p in weight_tensors(model):
        noise = torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.device, p.dtype)
        p.add_(relative_std * p.float().std().to(p.dtype) * noise)


@torch.no_grad()
def _quantize(model: nn.Module, bits: float, g: torch.Generator, **_) -> None:
    # Symmetric per-tensor uniform quantization: 2^(bits-1)-1 steps each side of zero, step max|w|/steps.
    steps = 2 ** (int(bits) - 1) - 1
    for _, p in weight_tensors(model):
        scale = p.abs().max() / steps
        if scale > 0:
            p.copy_(torch.round(p / scale) * scale)


@torch.no_grad()
def _prune(model: nn.Module, fraction: float, g: torch.Generator, **_) -> None:
    # Per-tensor unstructured magnitude pruning (torch's L1 pruning), made permanent.
    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            if p.is_floating_point() and p.ndim >= 2:
                prune.l1_unstructured(module, name, amount=fraction)
                prune.remove(module, name)


def _finetune(model: nn.Module, steps: float, g: torch.Generator, loss_fn: FinetuneLoss | None = None,
              lr: float = 1e-4, **_) -> None:  # fmt: skip
    if loss_fn is None:
        raise GanprintError("finetune needs a loss on clean data; this subject does not provide one")
    was_training = model.training
    model.train()
    params = [p for p in model.parameters() if p.is_floating_point()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    with torch.enable_grad():
        for _ in range(int(steps)):
            loss = loss_fn(model, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.train(was_training)


MODEL_ATTACKS: dict[str, ModelAttack] = {
    a.name: a
    for a in [
        ModelAttack("weight_noise", "std relative to each weight tensor's std", (0.01, 0.02, 0.05, 0.1, 0.2),
                    "add Gaussian noise to every weight tensor", _weight_noise, (0, 10), identity=0),
        ModelAttack("quantize", "bits", (16, 8, 6, 4), "symmetric per-tensor uniform weight quantization",
                    _quantize, (2, 32), integer=True, stronger="down"),
        ModelAttack("prune", "fraction of weights zeroed", (0.1, 0.2, 0.3, 0.5, 0.7),
                    "per-tensor magnitude pruning (smallest |w| set to 0)", _prune, (0, 1), identity=0),
        ModelAttack("finetune", "Adam steps on clean data", (50, 200, 1000),
                    "fine-tune on clean (unfingerprinted) data with the subject's loss", _finetune, (0, 1_000_000),
                    identity=0, integer=True),
    ]
}  # fmt: skip


def parse_model_attack_levels(spec) -> list[AttackLevel]:
    """As attacks.parse_attack_levels, over the model attacks."""
    from .attacks import parse_attack_levels

    return parse_attack_levels(spec, MODEL_ATTACKS)
