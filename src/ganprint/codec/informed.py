"""What both informed embedders share (codec/refine.py for the fixed-size codecs, codec/anysize_refine.py
for the any-size one): a decoder frozen so that gradients reach the residual only, reading the image as
a file would store it, the margin hinge every bit should clear, and Adam on a cosine schedule.

No kornia here: refine.py's attack views need it, and the any-size refiner loads it only for its JPEG view."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


@contextmanager
def frozen(decoder: nn.Module) -> Iterator[nn.Module]:
    """The decoder in eval mode with its parameters out of autograd (no weight gradients are computed),
    restored afterwards."""
    was_training = decoder.training
    decoder.eval()
    params = [p for p in decoder.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield decoder
    finally:
        for p in params:
            p.requires_grad_(True)
        decoder.train(was_training)


def as_stored(images: torch.Tensor, levels: float | None = 255) -> torch.Tensor:
    """`images` rounded to `levels` steps (what an 8-bit or 16-bit file holds) going forward, unchanged
    going backward (straight-through); None: no rounding (float storage)."""
    if levels is None:
        return images
    return images + ((images * levels).round() / levels - images).detach()


def margin_hinge(logits: torch.Tensor, bits: torch.Tensor, margin: float) -> torch.Tensor:
    """Per-bit hinge: how far each logit falls short of reading its bit with `margin` (0 once it does)."""
    return torch.relu(margin - (2 * bits - 1) * logits)


def cosine_adam(parameter: torch.Tensor, lr: float, steps: int):
    """(optimizer, schedule): Adam on `parameter`, its step size cosine-decayed to 0 over `steps`."""
    optimizer = torch.optim.Adam([parameter], lr=lr)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
