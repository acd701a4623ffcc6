"""Pictures people look at: clean / fingerprinted / amplified-residual grids; labelled image rows."""

from __future__ import annotations

import io
import os
from typing import Sequence

import torch
from PIL import Image

from .io import atomic_path


def amplified_residual(clean: torch.Tensor, marked: torch.Tensor) -> torch.Tensor:
    """|marked - clean| stretched per image to the full [0, 1] range so the pattern is visible."""
    diff = (marked - clean).abs()
    peak = diff.flatten(1).amax(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
    return diff / peak


def flattest_and_busiest_windows(image: torch.Tensor, side: int = 160) -> list[tuple[int, int]]:
    """Top-left (y, x) of the flattest and of the most textured side x side window of a (3,H,W) image
    (windows on a side/2 grid; local texture = mean |pixel - its 3x3 mean| of the grey image)."""
    grey = image.mean(0, keepdim=True).unsqueeze(0)
    detail = (grey - torch.nn.functional.avg_pool2d(grey, 3, 1, 1)).abs()
    local = torch.nn.functional.avg_pool2d(detail, side, side // 2)
    flat = divmod(int(local.flatten().argmin()), local.shape[-1])
    busy = divmod(int(local.flatten().argmax()), local.shape[-1])
    return [(y * side // 2, x * side // 2) for y, x in (flat, busy)]


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


def labelled_image_rows(
    rows: Sequence[torch.Tensor],
    row_labels: Sequence[str],
    image_labels: Sequence[Sequence[str]],
    image_colors: Sequence[Sequence[str]] | None = None,
    title: str | None = None,
) -> Image.Image:
    """One row per group of images (each (n, 3, R, R) in [0, 1]), a label left of each row and a
    caption under each image (in `image_colors`, any matplotlib colour), drawn with matplotlib."""
    from matplotlib.figure import Figure  # imported here: matplotlib adds ~1 s to every CLI start

    cols = max(1, max(len(images) for images in rows))
    fig = Figure(figsize=(1.2 * cols + 1.5, 1.45 * len(rows) + (0.5 if title else 0.1)), dpi=110)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for i, images in enumerate(rows):
        for j in range(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(images):
                ax.set_axis_off()
                continue
            array = images[j].detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(array, interpolation="nearest")  # small images: keep the pixels visible
            color = image_colors[i][j] if image_colors is not None else "black"
            ax.set_xlabel(image_labels[i][j], fontsize=7, color=color, labelpad=2)
        axes[i, 0].set_ylabel(row_labels[i], fontsize=8, rotation=0, ha="right", va="center", labelpad=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def save_png(image: Image.Image, path: str | os.PathLike) -> None:
    """Write a PNG atomically."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
