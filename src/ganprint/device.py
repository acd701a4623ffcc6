"""Choosing the torch device: CUDA when the user has it and asks, the CPU otherwise."""

from __future__ import annotations

import torch

from .errors import GanprintError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' picks CUDA when present; an explicit 'cuda' without a GPU is a clear error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise GanprintError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GanprintError("CUDA was requested but no CUDA device is available; use --device cpu")
    return device
