"""Loading a codec from anything a user may hold: a shipped name, a ganprint model folder, or the
original release's `*_encoder.pth` / `*_decoder.pth` state dicts (read without unpickling objects)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..device import resolve_device
from ..errors import GanprintError
from ..pretrained import DEFAULT_CODEC
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


def load_codec(
    model: str | os.PathLike | None = None,
    resolution: int | None = None,
    device: str | torch.device = "cpu",
) -> FingerprintCodec:
    """A shipped name or folder (config.json + model.safetensors), or an original .pth file.

    `resolution`, when given, must match the model's (the original encoder needs it: its weights do
    not say which resolution it was trained for).
    """
    model = DEFAULT_CODEC if model is None else model
    path = Path(model)
    if path.is_file() and path.suffix.lower() in ORIGINAL_SUFFIXES:
        codec = codec_from_original(path, resolution=resolution)
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
