"""Image quality between two batches: PSNR and SSIM per image (SSIM from kornia.metrics)."""

from __future__ import annotations

import kornia
import torch

PSNR_CAP = 100.0  # dB reported for identical images (an MSE floor of 1e-10), so tables stay finite


def psnr(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1] against `reference`: 10 log10(1 / MSE), capped."""
    mse = (images.float() - reference.float()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1 / mse.clamp_min(10 ** (-PSNR_CAP / 10)))).cpu()


def ssim(images: torch.Tensor, reference: torch.Tensor, window: int = 11, batch_size: int = 256) -> torch.Tensor:
    """Per-image mean SSIM (Gaussian window of `window` pixels, shrunk for small images)."""
    side = min(images.shape[-2:])
    window = max(3, min(window, side if side % 2 else side - 1))
    out = [
        kornia.metrics.ssim(images[s : s + batch_size].float(), reference[s : s + batch_size].float(), window)
        .flatten(1).mean(1).cpu()
        for s in range(0, images.shape[0], batch_size)
    ]  # fmt: skip
    return torch.cat(out) if out else torch.empty(0)
