"""Informed embedding for the any-size codec: the encoder's working-resolution residual, tuned against
the frozen decoder so that every bit reads with a margin once the residual is resized to the image,
added, clipped and rounded as the file stores it (the ideas of codec/refine.py, at W x W).

    refiner = AnySizeRefiner(steps=10)
    residual = refiner(codec.decoder, image, bits, codec.encoder(to_working(image, 128), bits), mask_floor)

Why at working resolution: the residual is a W x W map whatever the image's size, so the parameters
are W x W x 3 (x 1 for greyscale) and a step costs one decoder pass at W forward and backward. The
image itself is only seen through a proxy: the image resized to at most `proxy_side` px on its long
side (never below W on its short side), to which the residual is resized, added, clipped and rounded
before the decoder's own resize to W. Rounding at the proxy is coarser than at native size (fewer
pixels average into each working pixel), so the proxy errs on the safe side; clipping is approximate.

Kept as the encoder made it: the texture mask (the residual is mask x v and v is what moves, so flat
regions still get their share of it, no more) and the energy. The working residual's RMS never
exceeds the encoder's, and at the end its native-size change (after clipping) is scaled down, if
needed, to no more than the encoder's: PSNR cannot drop. The decoder is unchanged, so clean images
read exactly as before (same false-positive rate).

Greyscale (`grey=True`): the residual is one channel added to all three, so that it survives the
image staying greyscale (the encoder's residual is mostly colour and averages away in grey). Its
energy budget is the colour residual's.

With `jpeg_quality` (75 by default) each step also reads the stand-in after kornia's differentiable
JPEG: on small images, whose stand-in is the image itself, the fingerprint then survives JPEG far
better at the same PSNR (a large image's residual is too smooth for JPEG to matter).

The optimisation stops early once every bit clears the largest margin on every view: an image the encoder already
marks well costs one decoder pass more than plain embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import GanprintError
from .anysize import FoldingDecoder, texture_mask, to_native, to_working
from .informed import as_stored, cosine_adam, frozen, margin_hinge

DEFAULT_PROXY_SIDE = 256


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean().sqrt()


def proxy_size(height: int, width: int, working: int, side: int) -> tuple[int, int]:
    """The size the image is optimised at: long side at most `side`, short side not below `working`
    (unless the image is smaller), aspect ratio kept."""
    scale = min(1.0, max(side / max(height, width), working / min(height, width)))
    return max(1, round(height * scale)), max(1, round(width * scale))


def native_change_rms(image: torch.Tensor, residual: torch.Tensor) -> float:
    """RMS of what the working `residual` changes in the native (1,3,H,W) `image` once resized and clipped."""
    h, w = image.shape[-2:]
    with torch.no_grad():
        change = (image + to_native(residual, h, w)).clamp_(0, 1).sub_(image)  # in place: a 4K image is 100 MB
        return change.pow_(2).mean().sqrt().item()


def jpeg_view(images: torch.Tensor, quality: float) -> torch.Tensor:
    """`images` through kornia's differentiable JPEG at `quality`, padded to whole 16 px blocks (edge
    pixels repeated) and cut back to their size."""
    import kornia  # only when a JPEG view is asked for: its import is slow

    h, w = images.shape[-2:]
    padded = F.pad(images, (0, -w % 16, 0, -h % 16), mode="replicate")
    quality = torch.full((images.shape[0],), float(quality), device=images.device)
    return kornia.enhance.jpeg_codec_differentiable(padded, quality)[..., :h, :w]


@dataclass
class AnySizeRefiner:
    steps: int = 10  # Adam steps at most; 0 = the encoder's residual unchanged
    lr: float = 3e-3  # Adam step size on the mask-divided residual ([0, 1] pixel units), cosine-decayed
    # logit margins each bit should clear: one hinge loss per margin, summed, so bits below the first are
    # pulled twice as hard. The second keeps strong bits strong: with refine.py's 3 alone the weak bits were
    # lifted by draining strong ones, which a crop's reduced-size reading then missed (docs/codec-design.md)
    margins: tuple[float, ...] = (3.0, 8.0)
    proxy_side: int = DEFAULT_PROXY_SIDE  # long side of the image stand-in the steps see (px)
    # the stand-in is also read after a differentiable JPEG at this quality (None: not): on small images,
    # whose stand-in is the image itself, JPEG 75 then reads 0.97 instead of 0.85 (docs/codec-design.md)
    jpeg_quality: int | None = 75

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            raise GanprintError(f"refine steps must be a whole number >= 0, got {self.steps!r}")
        if not self.lr > 0 or not self.margins or not all(m > 0 for m in self.margins):
            raise GanprintError("refine lr and margins must be positive")
        if self.jpeg_quality is not None and not (isinstance(self.jpeg_quality, int) and 1 <= self.jpeg_quality <= 100):
            raise GanprintError(f"refine JPEG quality must be a whole number in 1..100 or None, got {self.jpeg_quality!r}")
        if not isinstance(self.proxy_side, int) or self.proxy_side < 64:
            raise GanprintError(f"refine proxy side must be a whole number >= 64, got {self.proxy_side!r}")

    def __call__(self, decoder: FoldingDecoder, image: torch.Tensor, bits: torch.Tensor, residual: torch.Tensor,
                 mask_floor: float, grey: bool = False, levels: float | None = 255) -> torch.Tensor:  # fmt: skip
        """The refined working residual: (1, 3, W, W), or (1, 1, W, W) with `grey`, for the native
        (1,3,H,W) `image`, (1,L) `bits` and the encoder's (1,3,W,W) `residual`. `levels`: the
        file's steps per unit (255 for 8 bits, 65535 for 16, None for float images)."""
        residual = residual.detach().float()
        start = residual.mean(1, keepdim=True) if grey else residual
        if self.steps == 0:
            return start
        image, bits = image.detach().float(), bits.detach().float()
        size = residual.shape[-1]
        proxy = to_native(image, *proxy_size(*image.shape[-2:], size, self.proxy_side))
        mask = texture_mask(to_working(image, size), mask_floor)
        budget = _rms(residual)
        v = (start / mask).requires_grad_(True)
        optimizer, schedule = cosine_adam(v, self.lr, self.steps)
        with frozen(decoder), torch.enable_grad():
            for _ in range(self.steps):
                stored = as_stored((proxy + to_native(mask * v, *proxy.shape[-2:])).clamp(0, 1), levels)
                if self.jpeg_quality is not None:
                    stored = torch.cat([stored, jpeg_view(stored, self.jpeg_quality)])
                folded = decoder.fold(to_working(stored, size))
                no_shift = torch.zeros(len(folded), dtype=torch.long, device=image.device)
                logits = decoder.read(folded, no_shift, no_shift)  # the uncropped reading
                shortfall = sum(margin_hinge(logits, bits, m) for m in self.margins)
                if not shortfall.any():
                    break  # every bit clears every margin
                optimizer.zero_grad()
                shortfall.mean().backward()
                optimizer.step()
                schedule.step()
                with torch.no_grad():
                    v.mul_(torch.clamp(budget / (_rms(mask * v) + 1e-12), max=1.0))
        return self._within_native_budget(image, (mask * v).detach(), residual, start)

    @staticmethod
    def _within_native_budget(image: torch.Tensor, refined: torch.Tensor, residual: torch.Tensor,
                              start: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """`refined` scaled down until its clipped change at native size is no larger than the encoder's
        `residual`'s (`start`, the unrefined residual, should a few rounds not settle it)."""
        target = native_change_rms(image, residual)
        for _ in range(4):  # clipping makes the change shrink less than the scale: a few rounds settle it
            got = native_change_rms(image, refined)
            if got <= target:
                return refined
            refined = refined * (target / got)
        return refined if native_change_rms(image, refined) <= target else start
