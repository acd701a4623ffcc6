"""Pictures people look at: clean / fingerprinted / amplified-residual grids."""

from __future__ import annotations

import os

import torch
from PIL import Image

from .io import atomic_path


def amplified_residual(clean: torch.Tensor, marked: torch.Tensor) -> torch.Tensor:
    """|marked - clean| stretched per image to the full [0, 1] range so the pattern is visible."""
    diff = (marked - clean).abs()
    peak = diff.flatten(1).amax(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
    return diff / peak


def residual_grid(clean: torch.Tensor, marked: torch.Tensor, max_images: int = 16) -> Image.Image:
    """Three rows: clean images, fingerprinted images, amplified residuals."""
    from torchvision.utils import make_grid  # imported here: torchvision adds ~2 s to every CLI start

    clean, marked = clean[:max_images].detach().cpu().float(), marked[:max_images].detach().cpu().float()
    rows = torch.cat([clean, marked, amplified_residual(clean, marked)])
    grid = make_grid(rows, nrow=clean.shape[0], padding=2, pad_value=1.0)
    array = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(array)
    if image.width < 512:  # small images: scale up with nearest neighbours so pixels stay visible
        scale = max(1, 512 // image.width)
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


def save_png(image: Image.Image, path: str | os.PathLike) -> None:
    """Write a PNG atomically."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
