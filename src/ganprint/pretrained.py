"""Models shipped inside the package, found by name through importlib.resources."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import GanprintError

ANYSIZE_CODEC = "codec-any"  # any size and aspect ratio (codec/anysize.py)
DEFAULT_CODEC = ANYSIZE_CODEC  # what embed/detect/attribute/calibrate use when given no model or resolution
CODEC_32 = "codec-32"  # the fixed-resolution codec for 32x32 images (GAN training sets, the transfer experiment)
FIXED_RESOLUTION_CODECS = {32: CODEC_32}


def default_codec(resolution: int | None = None) -> str:
    """The shipped codec for a fixed resolution (`--image_resolution`), or the any-size one (None)."""
    if resolution is None:
        return DEFAULT_CODEC
    if resolution in FIXED_RESOLUTION_CODECS:
        return FIXED_RESOLUTION_CODECS[resolution]
    raise GanprintError(
        f"no shipped codec works at {resolution}x{resolution}; give a model with --model (a folder, or the original "
        f"release's *_encoder.pth / *_decoder.pth), or leave out --image_resolution for the any-size codec"
    )


def _models_root():
    return resources.files("ganprint") / "assets" / "models"


def shipped_models() -> list[str]:
    root = _models_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file())


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """A folder holding config.json + model.safetensors: a path, or the name of a shipped model."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists():
        raise GanprintError(
            f"{path}: expected a model folder (config.json + model.safetensors); "
            "import original .pth checkpoints with 'ganprint codec import'"
        )
    name = str(name_or_path)
    if name in shipped_models():
        return Path(str(_models_root() / name))
    known = ", ".join(shipped_models()) or "none"
    raise GanprintError(f"{name}: no such model folder or shipped model (shipped: {known})")
