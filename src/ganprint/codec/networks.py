"""ganprint's codec networks: a residual encoder and a convolutional decoder.

Differences from the original ICCV 2021 networks (codec/original.py), each measured in
docs/codec-design.md:
- The encoder predicts a residual that is scaled to a fixed RMS per image (`residual_rms`), so image
  fidelity is set by construction (PSNR ~ -20 log10(rms)) instead of by a loss weight that has to be
  scheduled; training anneals that RMS from a large value down to the target (codec/train.py).
- Bits enter as +-1 through a dense layer to a small spatial map, so every bit reaches every pixel
  from the first step; SiLU activations; no normalization layers (no train/eval mismatch).
- Optionally (`mean_preserving`) the residual has no mean in any channel, measured after clipping to
  [0, 1]: a fingerprint that shifts an image's brightness or tint carries almost no information in
  that shift but is what feature networks see most (docs/transfer.md).
- The decoder reads at full resolution first (the residual lives in high frequencies) and downsamples
  to 4x4 before a linear read-out of the bit logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanprintError
from .config import CodecConfig


def _check_size(images: torch.Tensor, resolution: int, who: str) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise GanprintError(f"{who} expects a batch of RGB images (N,3,H,W), got shape {tuple(images.shape)}")
    if images.shape[-2:] != (resolution, resolution):
        h, w = images.shape[-2:]
        raise GanprintError(f"{who} expects {resolution}x{resolution} images, got {h}x{w}")


class ResidualEncoder(nn.Module):
    """E(x, bits) = clamp(x + rms * r / ||r||_rms, 0, 1), r predicted from the image and the bits."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.resolution = config.resolution
        self.message_size = min(16, config.resolution // 2)
        self.message_channels = config.message_channels
        self.residual_rms = config.residual_rms
        self.mean_preserving = config.mean_preserving
        c = config.channels
        self.message = nn.Linear(config.fingerprint_length, config.message_channels * self.message_size**2)
        self.body = nn.Sequential(
            nn.Conv2d(3 + config.message_channels, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, 3, 1),
        )  # fmt: skip

    def residual(self, images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        """The unscaled residual r."""
        _check_size(images, self.resolution, "encoder")
        m = self.message(2 * bits - 1).view(-1, self.message_channels, self.message_size, self.message_size)
        m = F.interpolate(m, size=images.shape[-2:], mode="nearest")
        return self.body(torch.cat([2 * images - 1, m], dim=1))

    def forward(self, images: torch.Tensor, bits: torch.Tensor, rms: float | None = None) -> torch.Tensor:
        r = self.residual(images, bits)
        rms = self.residual_rms if rms is None else rms
        if self.mean_preserving:
            r = r - r.mean(dim=(2, 3), keepdim=True)
        r = rms * r / (r.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-8)
        if self.mean_preserving:
            r = remove_clipped_mean(images, r)
        return (images + r).clamp(0, 1)


def remove_clipped_mean(images: torch.Tensor, residual: torch.Tensor, rounds: int = 4) -> torch.Tensor:
    """Shift the residual so that clamp(images + residual, 0, 1) - images has zero mean per image and
    channel. Clipping at black or white pixels eats one sign of the residual there and leaves a net
    brightening or darkening; each round spreads the opposite offset over the pixels that are not
    clipped (pixels pushed to a bound in turn are caught by the next round: 4 leave ~1e-12)."""
    for _ in range(rounds):
        moved = images + residual
        change = moved.clamp(0, 1) - images
        free = ((moved > 0) & (moved < 1)).to(residual.dtype)
        offset = change.mean(dim=(2, 3), keepdim=True) / free.mean(dim=(2, 3), keepdim=True).clamp_min(1e-3)
        residual = residual - free * offset
    return residual


class ConvDecoder(nn.Module):
    """D(x) = bit logits: a full-resolution conv, stride-2 convs down to 4x4, a linear read-out."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.resolution = config.resolution
        c = config.channels
        layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1), nn.SiLU()]
        width = c
        for i in range(int(math.log2(config.resolution // 4))):
            out = min(2 * c, 256) if i >= 1 else c
            layers += [nn.Conv2d(width, out, 3, stride=2, padding=1), nn.SiLU()]
            if i == 0:
                layers += [nn.Conv2d(out, 2 * c, 3, padding=1), nn.SiLU()]
                out = 2 * c
            width = out
        self.body = nn.Sequential(*layers)
        self.readout = nn.Linear(width * 16, config.fingerprint_length)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_size(images, self.resolution, "decoder")
        return self.readout(self.body(2 * images - 1).flatten(1))
