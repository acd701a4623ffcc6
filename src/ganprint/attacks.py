"""Image-level attacks: named perturbations with named strength levels, as a robustness suite uses.

    from ganprint.attacks import ATTACKS, parse_attack_levels
    attacked = ATTACKS["jpeg"](images, 75)                 # (N,3,H,W) in [0,1] -> same shape and range
    smaller = ATTACKS["rescale"](image, 0.5)               # (3,H,W) -> (3,H/2,W/2)
    cropped = ATTACKS["crop_area"]([a, b], 0.5)            # a list of (3,H,W) of any sizes -> a list
    for level in parse_attack_levels("jpeg:75,noise,crop:0.9"):
        attacked = level.apply(images, seed=0)

An attack takes float images in [0, 1] of any size: a batch (N,3,H,W), one image (3,H,W), or a list
of (3,H,W) images of different sizes, and returns the same kind, in [0, 1]. Every attack is
deterministic given `seed` (only `noise` and `crop_area_random` draw random numbers). A level is
written `name:value` (e.g. `jpeg:75`, `crop:0.9`); a bare name stands for all its default levels.
Values are free (any quality, sigma, ...) within each attack's valid range.

Two families (docs/robustness.md):
- Fixed-size attacks keep each image's size: the grid the 32-px codecs were measured on
  (`FIXED_SIZE_ATTACKS`, their default; `crop` and `resize` scale the result back to the input size).
- Attacks in the wild, on images at their native size (issue 20; `ANY_SIZE_ATTACKS`, the default grid
  for any-size codecs): `rescale` and `crop_area`/`crop_area_random` return smaller images (as a
  resized or cropped copy is), `webp`, `rotation_reflect` and `screenshot` keep the size.
  `Attack.keeps_size` says which; fixed-resolution decoders cannot read the size-changing ones.

Attacks return float images; the evaluation grid rounds them to 8 bits afterwards, as a saved file
would hold them. `jpeg` and `webp` encode and decode real files with PIL (JPEG with 4:2:0 chroma
subsampling, PIL's default; lossy WebP), not an approximation.
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
Images = torch.Tensor | list[torch.Tensor]  # (N,3,H,W), (3,H,W), or a list of (3,H,W) of any sizes


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
    keeps_size: bool = True  # False: the output is smaller or larger than the input (rescale, crop_area)
    kind = "image"

    def __call__(self, images: Images, value: float, seed: int = 0) -> Images:
        """Attack a batch (N,3,H,W), one image (3,H,W) or a list of (3,H,W) images; the same kind back."""
        value = self.check(value)
        g = torch.Generator().manual_seed(int(seed))
        if isinstance(images, (list, tuple)):  # images of different sizes, one at a time
            return [self._apply(self._as_batch(x, f"image {i}", single=True), value, g)[0] for i, x in enumerate(images)]
        if isinstance(images, torch.Tensor) and images.ndim == 3:
            return self._apply(self._as_batch(images, "image", single=True), value, g)[0]
        return self._apply(self._as_batch(images, "images", single=False), value, g)

    def _as_batch(self, images, what: str, single: bool) -> torch.Tensor:
        """(1,3,H,W) for one image (`single`), else the (N,3,H,W) batch itself; anything else an error."""
        ndim = 3 if single else 4
        if (not isinstance(images, torch.Tensor) or images.ndim != ndim or images.shape[-3] != 3
                or not images.is_floating_point()):  # fmt: skip
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise GanprintError(f"attack {self.name}: {what}: expected float images (N,3,H,W), (3,H,W) or a list "
                                f"of (3,H,W), got {got}")  # fmt: skip
        return images.unsqueeze(0) if single else images

    def _apply(self, images: torch.Tensor, value: float, g: torch.Generator) -> torch.Tensor:
        if self.identity is not None and value == self.identity:
            return images.clone()
        return self.fn(images, value, g).clamp(0, 1)


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
def _file_round_trip(images: torch.Tensor, file_format: str, quality: int) -> torch.Tensor:
    """Each image saved as a real `file_format` file with PIL at `quality`, and decoded back."""
    out = []
    for image in images:
        array = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=file_format, quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            back = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
        out.append(torch.from_numpy(back.copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out).to(images.device, images.dtype)


def _jpeg(images: torch.Tensor, quality: float, g: torch.Generator) -> torch.Tensor:
    return _file_round_trip(images, "JPEG", int(quality))


def _webp(images: torch.Tensor, quality: float, g: torch.Generator) -> torch.Tensor:
    return _file_round_trip(images, "WEBP", int(quality))  # lossy WebP (libwebp's default method 4)


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


# ------------------------------------------------------------- in the wild, at native size
def area_crop_size(height: int, width: int, share: float) -> tuple[int, int]:
    """(h, w) of a crop keeping `share` of the area at the image's aspect ratio: each side x sqrt(share)."""
    side = math.sqrt(share)
    return max(1, round(height * side)), max(1, round(width * side))


def rescaled_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """(h, w) of an image of height x width resized by `factor` per side."""
    return max(1, round(height * factor)), max(1, round(width * factor))


def _rescale(images: torch.Tensor, factor: float, g: torch.Generator) -> torch.Tensor:
    # Antialiased bicubic, as PIL's Image.resize (the usual way photos get resized); the size stays.
    size = rescaled_size(*images.shape[-2:], factor)
    return TF.resize(images, list(size), interpolation=TF.InterpolationMode.BICUBIC, antialias=True)


def _crop_area(images: torch.Tensor, share: float, g: torch.Generator) -> torch.Tensor:
    return TF.center_crop(images, list(area_crop_size(*images.shape[-2:], share)))


def _crop_area_random(images: torch.Tensor, share: float, g: torch.Generator) -> torch.Tensor:
    # Each image its own window position, uniform over all that fit (drawn from the seeded generator).
    h, w = images.shape[-2:]
    ch, cw = area_crop_size(h, w, share)
    out = []
    for image in images:
        top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
        left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
        out.append(image[:, top : top + ch, left : left + cw])
    return torch.stack(out)


def _rotate_reflect(images: torch.Tensor, degrees: float, g: torch.Generator) -> torch.Tensor:
    # Counter-clockwise about the centre, same size; the corners that come in are the image mirrored at
    # its borders (no black wedges, nothing cropped or rescaled), as a straightened photo's fill.
    import kornia

    angle = torch.full((images.shape[0],), float(degrees), dtype=images.dtype, device=images.device)
    return kornia.geometry.transform.rotate(images, angle, mode="bilinear", padding_mode="reflection")


SCREENSHOT_JPEG_QUALITY = 80


def _screenshot(images: torch.Tensor, factor: float, g: torch.Generator) -> torch.Tensor:
    # A screenshot of an image shown scaled, saved as JPEG: resize, round to 8 bits, JPEG.
    return _jpeg(_rescale(images, factor, g).clamp(0, 1), SCREENSHOT_JPEG_QUALITY, g)


# ------------------------------------------------------------------------------------------------
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
        # in the wild, at native size (issue 20)
        Attack("webp", "quality", (90, 80, 50), "lossy WebP encode and decode (PIL)", _webp, (1, 100),
               integer=True, stronger="down"),
        Attack("rescale", "scale factor", (0.75, 0.5, 0.25), "resize each side by the factor and keep that size "
               "(bicubic, antialiased)", _rescale, (0.05, 4), identity=1, stronger="down", keeps_size=False),
        Attack("crop_area", "kept area share", (0.75, 0.5, 0.25), "centre crop keeping this share of the area "
               "(aspect kept), not resized back", _crop_area, (0.01, 1), identity=1, stronger="down",
               keeps_size=False),
        Attack("crop_area_random", "kept area share", (0.75, 0.5, 0.25), "off-centre crop keeping this share of the "
               "area at a random place per image (seeded), not resized back", _crop_area_random, (0.01, 1),
               identity=1, stronger="down", keeps_size=False),
        Attack("rotation_reflect", "degrees", (2, 5, 10), "rotate counter-clockwise, same size, borders filled by "
               "reflection", _rotate_reflect, (-360, 360), identity=0, stronger="away"),
        Attack("screenshot", "scale factor", (0.75, 0.5), f"resize each side by the factor (kept), then JPEG "
               f"quality {SCREENSHOT_JPEG_QUALITY}", _screenshot, (0.05, 4), stronger="down", keeps_size=False),
    ]
}  # fmt: skip

# The grid the fixed-resolution (32 px) codecs are measured on: their default; their published figures
# depend on it, so it never changes.
FIXED_SIZE_ATTACKS = ("jpeg", "blur", "noise", "crop", "resize", "rotation", "brightness", "contrast", "saturation",
                      "hflip", "combined")  # fmt: skip
# What users meet in the wild (issue 20, item 5), applied at each image's native size: the default grid
# for any-size codecs.
ANY_SIZE_ATTACKS = (
    "jpeg:90,jpeg:75,jpeg:50,webp:80,rescale:0.5,rescale:0.25,crop_area:0.5,crop_area:0.25,crop_area_random:0.5,"
    "crop_area_random:0.25,rotation_reflect:2,rotation_reflect:5,contrast:0.7,contrast:1.3,saturation:0.7,"
    "saturation:1.3,brightness:0.7,brightness:1.3,screenshot:0.75"
)


def parse_attack_levels(spec: str | list[str] | tuple[str, ...] | None, registry: dict | None = None,
                        default=None) -> list:  # fmt: skip
    """`"jpeg:75,noise,crop:0.9"` (or a list of such items) -> attack levels; None (or nothing):
    `default` (a spec) when given, else every attack of `registry` (default: the image attacks) at its
    default levels; `all`: every attack of `registry`. Duplicates are dropped, order is kept. Works for
    any registry of objects with name/levels/check (model_attacks too)."""
    registry = ATTACKS if registry is None else registry
    items = split_spec(spec)
    if not items and default is not None:
        items = split_spec(default)
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
