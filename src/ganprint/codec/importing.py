"""Loading a codec from anything a user may hold: a shipped name, a ganprint model folder, or the
original release's `*_encoder.pth` / `*_decoder.pth` state dicts (read without unpickling objects)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .. import checkpoint
from ..device import resolve_device
from ..errors import GanprintError
from ..pretrained import default_codec, resolve_model_dir
from .codec import FingerprintCodec
from .config import CodecConfig

ORIGINAL_SUFFIXES = (".pth", ".pt")


def codec_from_original(*paths: str | os.PathLike, resolution: int | None = None) -> FingerprintCodec:
    """A codec of the original architecture from original checkpoints: an encoder, a decoder, or both."""
    from .original import read_original_checkpoint

    if not paths:
        raise GanprintError("give an encoder checkpoint, a decoder checkpoint, or both")
    checkpoints = [read_original_checkpoint(p, resolution) for p in paths]
    parts = {}
    for path, ckpt in zip(paths, checkpoints):
        if ckpt.kind in parts:
            raise GanprintError(f"{path}: a second original {ckpt.kind} checkpoint; give one encoder and one decoder")
        parts[ckpt.kind] = ckpt
    # An encoder's weights do not say its resolution: take the decoder's, or the user's.
    if "encoder" in parts and parts["encoder"].resolution is None:
        if "decoder" not in parts:
            raise GanprintError(
                f"{parts['encoder'].path}: an original encoder does not record its resolution; pass --image_resolution"
            )
        parts["encoder"].resolution = parts["decoder"].resolution
    lengths = {c.fingerprint_length for c in parts.values()}
    if len(lengths) > 1:
        raise GanprintError(f"encoder and decoder disagree on the fingerprint length ({sorted(lengths)})")
    resolutions = {c.resolution for c in parts.values()}
    if len(resolutions) > 1:
        raise GanprintError(f"encoder and decoder disagree on the resolution ({sorted(resolutions)})")
    config = CodecConfig(arch="original", resolution=resolutions.pop(), fingerprint_length=lengths.pop()).validate()
    codec = FingerprintCodec(config, encoder="encoder" in parts, decoder="decoder" in parts)
    for role, ckpt in parts.items():
        getattr(codec, role).load_state_dict(ckpt.state_dict, strict=True)
    return codec.eval()


def is_anysize_model(model: str | os.PathLike) -> bool:
    """Whether a name or folder holds an any-size codec (codec/anysize.py)."""
    from .anysize import KIND

    path = Path(model)
    if path.is_file():
        return False
    config = checkpoint.read_config(resolve_model_dir(model))
    return isinstance(config, dict) and config.get("kind") == KIND


def load_codec(
    model: str | os.PathLike | None = None,
    resolution: int | None = None,
    device: str | torch.device = "cpu",
) -> FingerprintCodec:
    """A shipped name or folder (config.json + model.safetensors), or an original .pth file.

    `resolution`, when given, must match the model's (the original encoder needs it: its weights do
    not say which resolution it was trained for); an any-size codec takes none.
    """
    model = default_codec(resolution) if model is None else model
    path = Path(model)
    if path.is_file() and path.suffix.lower() in ORIGINAL_SUFFIXES:
        codec = codec_from_original(path, resolution=resolution)
    elif is_anysize_model(model):
        from .anysize_codec import AnySizeCodec

        if resolution is not None:
            raise GanprintError(
                f"{model}: an any-size codec keeps every image at its own size; drop --image_resolution, "
                "or choose a fixed-resolution model (e.g. --model codec-32)"
            )
        codec = AnySizeCodec.from_pretrained(model)
    else:
        codec = FingerprintCodec.from_pretrained(model)
    if resolution is not None and resolution != codec.config.resolution:
        raise GanprintError(
            f"{model}: model works at {codec.config.resolution}x{codec.config.resolution}, "
            f"but --image_resolution is {resolution}"
        )
    device = resolve_device(device)
    codec = codec.to(device).eval()
    if device.type == "cpu":
        # oneDNN's convolutions embed 1.3x faster in NHWC than converting NCHW maps on every call; the
        # outputs are the same function, up to float rounding.
        codec = codec.to(memory_format=torch.channels_last)
    return codec
