"""Image quality between two sets of images: PSNR and SSIM per image (SSIM from kornia.metrics).

Batches (N,3,H,W) are compared image by image; so are lists of (3,H,W) images of different sizes
(each pair must have the same size), as images at their native size come.
"""

from __future__ import annotations

from typing import Sequence

import kornia
import torch

PSNR_CAP = 100.0  # dB reported for identical images (an MSE floor of 1e-10), so tables stay finite


def _pairs(images, reference) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if len(images) != len(reference):
        raise ValueError(f"{len(images)} images for {len(reference)} references")
    pairs = []
    for i, (a, b) in enumerate(zip(images, reference)):
        if a.shape != b.shape:
            raise ValueError(f"image {i}: {tuple(a.shape)} against a reference of {tuple(b.shape)}")
        pairs.append((a.unsqueeze(0), b.unsqueeze(0)))
    return pairs


def psnr(images: torch.Tensor | Sequence[torch.Tensor], reference: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1] against `reference`: 10 log10(1 / MSE), capped."""
    if not isinstance(images, torch.Tensor):
        return torch.cat([psnr(a, b) for a, b in _pairs(images, reference)]) if len(images) else torch.empty(0)
    mse = (images.float() - reference.float()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1 / mse.clamp_min(10 ** (-PSNR_CAP / 10)))).cpu()


def ssim(images: torch.Tensor | Sequence[torch.Tensor], reference: torch.Tensor | Sequence[torch.Tensor],
         window: int = 11, batch_size: int = 256) -> torch.Tensor:  # fmt: skip
    """Per-image mean SSIM (Gaussian window of `window` pixels, shrunk for small images)."""
    if not isinstance(images, torch.Tensor):
        return torch.cat([ssim(a, b, window) for a, b in _pairs(images, reference)]) if len(images) else torch.empty(0)
    side = min(images.shape[-2:])
    window = max(3, min(window, side if side % 2 else side - 1))
    out = [
        kornia.metrics.ssim(images[s : s + batch_size].float(), reference[s : s + batch_size].float(), window)
        .flatten(1).mean(1).cpu()
        for s in range(0, images.shape[0], batch_size)
    ]  # fmt: skip
    return torch.cat(out) if out else torch.empty(0)
