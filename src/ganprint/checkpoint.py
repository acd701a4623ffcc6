"""Model files: `config.json` + `model.safetensors` for inference, plain tensor dicts for resuming.

Nothing here unpickles objects: weights are safetensors, training checkpoints are read with
`torch.load(weights_only=True)`, and configs are JSON. Every write is atomic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import GanprintError
from .io import atomic_path, atomic_write_json

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_pretrained(directory: str | os.PathLike, config: dict, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write config.json and model.safetensors into `directory` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state_dict.items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    atomic_write_json(directory / CONFIG_NAME, config)
    return directory


def read_config(directory: str | os.PathLike) -> dict:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise GanprintError(f"{directory}: not a ganprint model folder (no {CONFIG_NAME})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GanprintError(f"{path}: not valid JSON ({exc.__class__.__name__})") from None


def read_weights(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise GanprintError(f"{directory}: no {WEIGHTS_NAME} beside {CONFIG_NAME}")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise GanprintError(f"{path}: not a readable safetensors file ({reason})") from None


def first_non_finite(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, or None."""
    for name, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def refuse_non_finite(state_dict: dict[str, torch.Tensor], source: str) -> None:
    """A corrupted download or a diverged fine-tune gives NaN weights, whose outputs are nonsense that
    still look like verdicts (all-black images, constant bits): refuse them at load."""
    name = first_non_finite(state_dict)
    if name is not None:
        raise GanprintError(
            f"{source}: weight {name} holds NaN or infinite values; the model is broken (a corrupted file or a "
            f"diverged training run); use another copy or snapshot"
        )


def load_state(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict=True) with a one-line error naming the file and the first mismatch;
    non-finite weights are refused."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise GanprintError(f"{source}: weights do not fit this model ({what})")
    for name, tensor in state_dict.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise GanprintError(
                f"{source}: weights do not fit this model ({name} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(expected[name].shape)})"
            )
    refuse_non_finite(state_dict, source)
    module.load_state_dict(state_dict, strict=True)


def save_training_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """A resume checkpoint: tensors, optimizer state, numbers and strings only (weights_only-safe)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_training_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise GanprintError(f"{path}: resume checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for truncated or foreign files
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else exc.__class__.__name__
        raise GanprintError(f"{path}: not a readable training checkpoint ({reason})") from None
    if not isinstance(state, dict):
        raise GanprintError(f"{path}: not a ganprint training checkpoint")
    return state
