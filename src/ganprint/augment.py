"""Differentiable perturbations for immunized training (kornia), ramped in over training.

A trainer puts an `Augmenter` between the fingerprinted image and the decoder, so the decoder learns
to read the fingerprint through the attacks it will meet and the encoder learns to hide it where
they do not reach:

    augment = Augmenter.from_spec("default", ramp_steps=1000)      # or "noise,jpeg=40@3,crop"
    seen = augment(marked, step, generator)                        # same shape, gradients flow

Each image gets ONE perturbation drawn from the listed ones plus "none" (so clean reading stays
sharp), each with probability proportional to its weight (`name=maximum@weight`; 1 unless given,
"none" always 1), at a strength drawn uniformly from [0, ramp(step)] of that perturbation's maximum;
ramp(step) = min(1, step / ramp_steps) grows from 0 to 1. All randomness comes from the caller's
generator and is drawn in the same amounts whatever is chosen, so a run is reproducible and resumes
exactly.

Maxima are set a little beyond the attack levels the robustness targets test (JPEG 75, noise 0.05,
blur 1, crop 0.9, brightness +-30%), so those levels sit inside the training distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import kornia
import torch

from .attacks import split_spec
from .errors import GanprintError

# fn(images, s, signs, offsets, noise): s in [0,1] per image (strength as a share of the maximum,
# already scaled by the maximum's meaning below), signs in {-1,+1}, offsets in [0,1)^2, noise ~ N(0,1).
PerturbFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Perturbation:
    name: str
    maximum: float  # full-strength parameter: std, sigma, 100-quality, 1-crop fraction, |factor-1|
    summary: str
    fn: PerturbFn


def _noise(x, amount, signs, offsets, noise):
    return x + amount.view(-1, 1, 1, 1) * noise


def _blur(x, sigma, signs, offsets, noise):
    size = max(3, 2 * int(torch.ceil(3 * sigma.max()).item()) + 1)
    sigma = sigma.clamp_min(1e-3)  # kornia divides by sigma; 1e-3 px is the identity in effect
    return kornia.filters.gaussian_blur2d(x, (size, size), torch.stack([sigma, sigma], dim=1), border_type="reflect")


def _jpeg(x, drop, signs, offsets, noise):
    # quality 100 - drop; kornia's differentiable JPEG (a smooth stand-in for rounding DCT coefficients)
    return kornia.enhance.jpeg_codec_differentiable(x, (100 - drop).clamp(1, 100))


def _crop(x, cut, signs, offsets, noise):
    # a square of side (1-cut)*R at a random position, resized back: covers center crops and shifts
    n, _, h, w = x.shape
    side_h, side_w = (1 - cut) * (h - 1), (1 - cut) * (w - 1)
    x0, y0 = offsets[:, 0] * (w - 1 - side_w), offsets[:, 1] * (h - 1 - side_h)
    boxes = torch.stack(
        [torch.stack([x0, y0], 1), torch.stack([x0 + side_w, y0], 1),
         torch.stack([x0 + side_w, y0 + side_h], 1), torch.stack([x0, y0 + side_h], 1)], dim=1,
    )  # fmt: skip
    return kornia.geometry.transform.crop_and_resize(x, boxes.to(x.dtype), (h, w), align_corners=True)


def _brightness(x, delta, signs, offsets, noise):
    return x * (1 + signs * delta).view(-1, 1, 1, 1)  # multiplicative, as the brightness attack


def _contrast(x, delta, signs, offsets, noise):
    return kornia.enhance.adjust_contrast_with_mean_subtraction(x, 1 + signs * delta)


def _saturation(x, delta, signs, offsets, noise):
    return kornia.enhance.adjust_saturation(x, 1 + signs * delta)


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in [
        Perturbation("noise", 0.08, "Gaussian noise, std up to the maximum", _noise),
        Perturbation("blur", 1.5, "Gaussian blur, sigma up to the maximum (px)", _blur),
        Perturbation("jpeg", 60, "differentiable JPEG, quality down to 100 - maximum", _jpeg),
        Perturbation("crop", 0.2, "crop of side 1 - up to the maximum, random position, resized back", _crop),
        Perturbation("brightness", 0.4, "brightness factor 1 +- up to the maximum", _brightness),
        Perturbation("contrast", 0.4, "contrast factor 1 +- up to the maximum", _contrast),
        Perturbation("saturation", 0.5, "saturation factor 1 +- up to the maximum", _saturation),
    ]
}
DEFAULT_SET = ("noise", "blur", "jpeg", "crop", "brightness", "contrast", "saturation")
_LIMITS = {"noise": 1.0, "blur": 10.0, "jpeg": 99.0, "crop": 0.9, "brightness": 1.0, "contrast": 1.0, "saturation": 1.0}


class Augmenter:
    """Applies one random perturbation per image, at a ramped random strength."""

    def __init__(self, maxima: dict[str, float], ramp_steps: int = 1000, weights: dict[str, float] | None = None):
        if not maxima:
            raise GanprintError("--augment: no perturbations given")
        if ramp_steps < 0:
            raise GanprintError(f"--augment-ramp must be >= 0, got {ramp_steps}")
        self.maxima = dict(maxima)
        self.names = list(maxima)
        self.weights = {n: float((weights or {}).get(n, 1.0)) for n in self.names}
        self.ramp_steps = int(ramp_steps)

    @classmethod
    def from_spec(cls, spec: str, ramp_steps: int = 1000) -> "Augmenter":
        """`default`, or a comma list of names with optional maxima and weights:
        `noise=0.1,jpeg=50@3,crop` (JPEG drawn three times as often as each other one and as
        "none"); `default` may be combined with overrides: `default,noise=0.1,jpeg@2`."""
        maxima: dict[str, float] = {}
        weights: dict[str, float] = {}
        for item in split_spec(spec):
            item, _, weight = item.partition("@")
            name, _, value = item.partition("=")
            name = name.strip()
            if weight:
                try:
                    weights[name] = float(weight)
                except ValueError:
                    raise GanprintError(f"--augment: {item}@{weight}: the weight is not a number") from None
                if not 0 < weights[name] <= 100:
                    raise GanprintError(f"--augment: {name} weight must be in (0, 100], got {weight}")
            if name == "default":
                if weight:
                    raise GanprintError("--augment: give weights to single perturbations, not to default")
                for n in DEFAULT_SET:
                    maxima.setdefault(n, PERTURBATIONS[n].maximum)
                continue
            if name not in PERTURBATIONS:
                known = ", ".join(["default", *PERTURBATIONS])
                raise GanprintError(f"--augment: unknown perturbation {name!r}; known: {known}")
            try:
                maximum = float(value) if value else PERTURBATIONS[name].maximum
            except ValueError:
                raise GanprintError(f"--augment: {item!r}: the maximum is not a number") from None
            if not 0 < maximum <= _LIMITS[name]:
                raise GanprintError(f"--augment: {name} maximum must be in (0, {_LIMITS[name]:g}], got {maximum:g}")
            maxima[name] = maximum
        return cls(maxima, ramp_steps, weights)

    def spec(self) -> str:
        weight = {n: "" if w == 1 else f"@{w:g}" for n, w in self.weights.items()}
        return ",".join(f"{n}={m:g}{weight[n]}" for n, m in self.maxima.items())

    def ramp(self, step: int) -> float:
        return 1.0 if self.ramp_steps == 0 else min(1.0, max(0.0, step / self.ramp_steps))

    def __call__(self, images: torch.Tensor, step: int, generator: torch.Generator,
                 batch_size: int | None = None, part: slice | None = None) -> torch.Tensor:  # fmt: skip
        """Perturb `images`. A trainer that splits each step's batch of `batch_size` over several
        processes passes its `part` of it: the draws are made for the whole batch and sliced, so the
        run does not depend on the number of processes."""
        n = images.shape[0] if batch_size is None else batch_size
        part = part if part is not None else slice(0, n)
        # Always the same draws, in the same order, whatever gets chosen (reproducible resume).
        choice = self._choose(n, generator)
        share = torch.rand(n, generator=generator) * self.ramp(step)
        signs = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        offsets = torch.rand(n, 2, generator=generator)
        noise = torch.randn((n, *images.shape[1:]), generator=generator)
        return self.apply(images, choice[part], share[part], signs[part], offsets[part], noise[part],
                          ramp=self.ramp(step))  # fmt: skip

    def _choose(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Index of each image's perturbation; len(names) is "none"."""
        if all(w == 1 for w in self.weights.values()):  # the draw of every run made before weights existed
            return torch.randint(0, len(self.names) + 1, (n,), generator=generator)
        cumulative = torch.tensor([*self.weights.values(), 1.0]).cumsum(0)
        u = torch.rand(n, generator=generator) * cumulative[-1]
        return torch.searchsorted(cumulative, u, right=True).clamp_max(len(self.names))

    def apply(self, images, choice, share, signs, offsets, noise, ramp: float = 1.0) -> torch.Tensor:
        """Perturbation `choice[i]` (an index into `names`; len(names) = none) at `share[i]` of its
        maximum for image i. JPEG is not the identity even at quality 100 (chroma subsampling), so
        its output is blended in by `ramp`: every perturbation starts from nothing."""
        device, dtype = images.device, images.dtype
        out = images
        for k, name in enumerate(self.names):
            idx = (choice == k).nonzero().flatten()
            if len(idx) == 0:
                continue
            amount = (share[idx] * self.maxima[name]).to(device, dtype)
            idx_d = idx.to(device)
            perturbed = PERTURBATIONS[name].fn(
                images[idx_d], amount, signs[idx].to(device, dtype), offsets[idx].to(device, dtype),
                noise[idx].to(device, dtype),
            ).clamp(0, 1)  # fmt: skip
            if name == "jpeg" and ramp < 1:
                perturbed = images[idx_d] + ramp * (perturbed - images[idx_d])
            out = out.index_copy(0, idx_d, perturbed)
        return out

    def full_strength(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Every image perturbed (none left clean) at full maximum: a held-out check of immunity."""
        n = images.shape[0]
        choice = torch.randint(0, len(self.names), (n,), generator=generator)
        signs = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        offsets = torch.rand(n, 2, generator=generator)
        noise = torch.randn(images.shape, generator=generator)
        return self.apply(images, choice, torch.ones(n), signs, offsets, noise)
