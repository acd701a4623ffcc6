"""Image-level attacks: named perturbations with named strength levels, as a robustness suite uses.

    from ganprint.attacks import ATTACKS, parse_attack_levels
    attacked = ATTACKS["jpeg"](images, 75)                 # (N,3,H,W) in [0,1] -> same shape and range
    for level in parse_attack_levels("jpeg:75,noise,crop:0.9"):
        attacked = level.apply(images, seed=0)

Every attack keeps the shape (N,3,H,W) and the range [0, 1], and is deterministic given `seed` (only
`noise` draws random numbers). A level is written `name:value` (e.g. `jpeg:75`, `crop:0.9`); a bare
name stands for all its default levels. Values are free (any quality, sigma, ...) within each
attack's valid range; the default levels cover the grids the field uses (docs/robustness.md).

Attacks return float images; the evaluation grid rounds them to 8 bits afterwards, as a saved file
would hold them. `jpeg` encodes and decodes real JPEG files with PIL (4:2:0 chroma subsampling, PIL's
default), not an approximation.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from .errors import GanprintError

AttackFn = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class LevelledAttack:
    """A named perturbation whose strength is one number (`parameter`): what image attacks (`Attack`)
    and model attacks (`ganprint.model_attacks.ModelAttack`) share; subclasses say what `fn` changes."""

    name: str
    parameter: str  # what the level value means, e.g. "quality", "sigma (px)"
    levels: tuple[float, ...]  # default strength levels, weakest first
    summary: str
    fn: Callable[..., object]
    valid: tuple[float, float]  # inclusive range of allowed values
    identity: float | None = None  # the value that leaves the target unchanged (None: no such value)
    integer: bool = False  # values must be whole numbers (JPEG quality, combined level, bits)
    stronger: str = "up"  # "up": larger values are stronger; "down": smaller; "away": away from identity

    def check(self, value: float) -> float:
        lo, hi = self.valid
        if not (isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi):
            raise GanprintError(f"attack {self.name}: level {value!r} is outside [{lo:g}, {hi:g}] ({self.parameter})")
        if self.integer and value != int(value):
            raise GanprintError(f"attack {self.name}: level must be a whole number ({self.parameter}), got {value:g}")
        return float(value)

    def label(self, value: float) -> str:
        return f"{self.name}:{value:g}"


@dataclass(frozen=True)
class Attack(LevelledAttack):
    """A named image perturbation whose strength is one number (`parameter`)."""

    fn: AttackFn
    kind = "image"

    def __call__(self, images: torch.Tensor, value: float, seed: int = 0) -> torch.Tensor:
        value = self.check(value)
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise GanprintError(f"attack {self.name}: expected float images (N,3,H,W), got {tuple(images.shape)}")
        if self.identity is not None and value == self.identity:
            return images.clone()
        g = torch.Generator().manual_seed(int(seed))
        out = self.fn(images, value, g)
        return out.clamp(0, 1)


@dataclass(frozen=True)
class AttackLevel:
    """One attack (image-level, or model-level from ganprint.model_attacks) at one strength: a row of
    the evaluation grid."""

    attack: LevelledAttack
    value: float

    @property
    def label(self) -> str:
        return self.attack.label(self.value)

    @property
    def kind(self) -> str:
        return self.attack.kind

    def apply(self, target, seed: int = 0, **context):
        """The attacked images (image attacks) or an attacked copy of a model (model attacks)."""
        return self.attack(target, self.value, seed, **context)


# ---------------------------------------------------------------------------------- the attacks
def _jpeg(images: torch.Tensor, quality: float, g: torch.Generator) -> torch.Tensor:
    out = []
    for image in images:
        array = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            back = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
        out.append(torch.from_numpy(back.copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out).to(images.device, images.dtype)


def _blur(images: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    size = 2 * math.ceil(3 * sigma) + 1  # +-3 sigma holds 99.7% of the kernel's weight
    return TF.gaussian_blur(images, [size, size], [sigma, sigma])


def _noise(images: torch.Tensor, std: float, g: torch.Generator) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=g, dtype=torch.float32).to(images.device, images.dtype)
    return images + std * noise


def _resize_to(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return TF.resize(images, list(size), interpolation=TF.InterpolationMode.BILINEAR, antialias=True)


def _crop(images: torch.Tensor, fraction: float, g: torch.Generator) -> torch.Tensor:
    h, w = images.shape[-2:]
    side = (max(1, round(h * fraction)), max(1, round(w * fraction)))
    return _resize_to(TF.center_crop(images, list(side)), (h, w))


def _resize(images: torch.Tensor, factor: float, g: torch.Generator) -> torch.Tensor:
    h, w = images.shape[-2:]
    small = _resize_to(images, (max(1, round(h * factor)), max(1, round(w * factor))))
    return _resize_to(small, (h, w))


def _rotate(images: torch.Tensor, degrees: float, g: torch.Generator) -> torch.Tensor:
    # Counter-clockwise about the centre, same size; the corners that come in are black.
    return TF.rotate(images, degrees, interpolation=TF.InterpolationMode.BILINEAR, fill=[0.0, 0.0, 0.0])


def _brightness(images: torch.Tensor, factor: float, g: torch.Generator) -> torch.Tensor:
    return TF.adjust_brightness(images, factor)  # multiplies every pixel: 1.3 is +30%


def _contrast(images: torch.Tensor, factor: float, g: torch.Generator) -> torch.Tensor:
    return TF.adjust_contrast(images, factor)  # blends with the mean grey level


def _saturation(images: torch.Tensor, factor: float, g: torch.Generator) -> torch.Tensor:
    return TF.adjust_saturation(images, factor)  # blends with the greyscale image; 0 is grey


def _hflip(images: torch.Tensor, on: float, g: torch.Generator) -> torch.Tensor:
    return TF.horizontal_flip(images)


def combined_parameters(level: int) -> dict[str, float]:
    """The perturbations of combined level k: center crop, brightness and JPEG, all growing with k."""
    return {"crop": 1 - 0.05 * level, "brightness": 1 + 0.1 * level, "jpeg": 100 - 10 * level}


def _combined(images: torch.Tensor, level: float, g: torch.Generator) -> torch.Tensor:
    p = combined_parameters(int(level))
    out = _crop(images, p["crop"], g)
    out = _brightness(out, p["brightness"], g).clamp(0, 1)
    return _jpeg(out, p["jpeg"], g)


ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in [
        Attack("jpeg", "quality", (90, 75, 50, 30, 10), "JPEG encode and decode (PIL, 4:2:0 chroma)", _jpeg,
               (1, 100), integer=True, stronger="down"),
        Attack("blur", "sigma (px)", (0.5, 1, 1.5, 2, 3), "Gaussian blur, kernel +-3 sigma", _blur, (0, 20), identity=0),
        Attack("noise", "std", (0.02, 0.05, 0.1, 0.2, 0.3), "additive Gaussian noise on [0,1] pixels", _noise,
               (0, 1), identity=0),
        Attack("crop", "kept side fraction", (0.95, 0.9, 0.8, 0.7, 0.5), "center crop, resized back to full size",
               _crop, (0.05, 1), identity=1, stronger="down"),
        Attack("resize", "scale factor", (0.9, 0.75, 0.5, 0.3), "downscale and upscale back (bilinear, antialiased)",
               _resize, (0.05, 1), identity=1, stronger="down"),
        Attack("rotation", "degrees", (5, 15, 30, 45, 90), "rotate counter-clockwise, same size, black corners",
               _rotate, (-360, 360), identity=0, stronger="away"),
        Attack("brightness", "factor", (0.5, 0.7, 1.3, 1.5, 2.0), "multiply pixel values (1.3 = +30%)", _brightness,
               (0, 10), identity=1, stronger="away"),
        Attack("contrast", "factor", (0.5, 0.7, 1.3, 1.5, 2.0), "blend with the mean grey level", _contrast,
               (0, 10), identity=1, stronger="away"),
        Attack("saturation", "factor", (0.0, 0.5, 1.5, 2.0), "blend with the greyscale image (0 = grey)",
               _saturation, (0, 10), identity=1, stronger="away"),
        Attack("hflip", "on (1)", (1,), "horizontal flip", _hflip, (0, 1), identity=0, integer=True),
        Attack("combined", "level", (1, 2, 3, 4, 5),
               "level k: center crop 1-0.05k, brightness x(1+0.1k), JPEG quality 100-10k", _combined, (0, 9),
               identity=0, integer=True),
    ]
}  # fmt: skip


def parse_attack_levels(spec: str | list[str] | tuple[str, ...] | None, registry: dict | None = None) -> list:
    """`"jpeg:75,noise,crop:0.9"` (or a list of such items) -> attack levels; `all` or None: every
    attack of `registry` (default: the image attacks) at its default levels. Duplicates are dropped,
    order is kept. Works for any registry of objects with name/levels/check (model_attacks too)."""
    registry = ATTACKS if registry is None else registry
    items = split_spec(spec)
    if not items or items == ["all"]:
        items = list(registry)
    levels: list[AttackLevel] = []
    for item in items:
        name, _, value = item.partition(":")
        attack = registry.get(name.strip())
        if attack is None:
            raise GanprintError(f"unknown attack {name.strip()!r}; known: {', '.join(registry)} (see `ganprint attacks`)")
        values = attack.levels if not value else (_number(attack.name, value),)
        for v in values:
            level = AttackLevel(attack, attack.check(v))
            if level not in levels:
                levels.append(level)
    return levels


def split_spec(spec) -> list[str]:
    """Comma-separated items of a string or of each string of a list, stripped, empty ones dropped."""
    if spec is None:
        return []
    parts = [spec] if isinstance(spec, str) else list(spec)
    return [p.strip() for part in parts for p in part.split(",") if p.strip()]


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise GanprintError(f"attack {name}: level {text!r} is not a number") from None
