"""The original ICCV 2021 encoder and decoder (Yu et al., "Artificial Fingerprinting"), layer for layer,
so that checkpoints released with the paper load here and give the same outputs.

Written from the description in docs/methods.md (section 1), not from the original code.

Encoder (``OriginalEncoder``), images in [0, 1], bits in {0, 1}, resolution R a power of two >= 32::

    secret_dense  Linear L -> 768, ReLU, view (3, 16, 16), nearest upsample x R/16  -> fingerprint map
    inputs        cat([fingerprint map, image])                                      6 x R x R
    conv1  3x3 s1   6 -> 32        conv2  3x3 s2  32 -> 32       conv3  3x3 s2  32 -> 64
    conv4  3x3 s2  64 -> 128       conv5  3x3 s2 128 -> 256      (padding 1, ReLU after each)
    up6    2x2    256 -> 128, cat [conv4, up6]  -> conv6 3x3 256 -> 128
    up7    2x2    128 -> 64,  cat [conv3, up7]  -> conv7 3x3 128 -> 64
    up8    2x2     64 -> 32,  cat [conv2, up8]  -> conv8 3x3  64 -> 32
    up9    2x2     32 -> 32,  cat [conv1, up9, inputs] (70) -> conv9 3x3 70 -> 32
    conv10 3x3 32 -> 32, residual 1x1 32 -> 3, sigmoid: the output IS the fingerprinted image.

Each "up" step is: nearest upsample x2, zero-pad right and bottom by one pixel, 2x2 conv without padding
(so the size stays 2x), ReLU. About 1.07 M parameters for L = 100, independent of R.

Decoder (``OriginalDecoder``)::

    decoder  Sequential: 7 convs 3x3 padding 1, ReLU after each (indices 0, 2, ..., 12):
             3->32 s2, 32->32 s1, 32->64 s2, 64->64 s1, 64->64 s2, 64->128 s2, 128->128 s2
    dense    Sequential: Linear(128 * (R/32)^2, 512), ReLU, Linear(512, L)  -> logits; bit = logit > 0

The attribute names are the checkpoint keys (``secret_dense.weight``, ``conv9.weight``,
``decoder.12.bias``, ``dense.2.weight``...), so ``load_state_dict(strict=True)`` needs no renaming.

``read_original_checkpoint`` opens a released ``*_encoder.pth`` / ``*_decoder.pth`` safely (tensors
only, never arbitrary pickled objects), on a CPU even when it was saved from GPU training, and checks it
against the layout above before anything is built.
"""

from __future__ import annotations

import math
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ganprint.checkpoint import refuse_non_finite
from ganprint.errors import GanprintError

__all__ = [
    "OriginalCheckpoint",
    "OriginalDecoder",
    "OriginalEncoder",
    "build_original",
    "read_original_checkpoint",
]

_MAP_CHANNELS = 3  # the fingerprint map is 3 x 16 x 16 = 768 values
_MAP_SIZE = 16
_DECODER_FEATURES = 128  # channels of the decoder's last conv, flattened into dense.0


def _check_resolution(resolution: object, what: str) -> int:
    """The originals are tied to R = 2^k >= 32: the encoder upsamples 16x16 by R/16 and goes down by 16,
    the decoder goes down by 32 and flattens a fixed-size map."""
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, int)
        or resolution < 32
        or resolution & (resolution - 1)
    ):
        raise GanprintError(f"{what} needs a resolution that is a power of two >= 32, got {resolution!r}")
    return resolution


def _check_images(images: torch.Tensor, resolution: int, what: str) -> None:
    # A clear message here instead of a shape error deep inside (or, worse, silent garbage).
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise GanprintError(f"{what} expects a batch of images (N, 3, H, W), got {shape}")
    if images.shape[1] != 3:
        raise GanprintError(f"{what} expects 3-channel RGB images, got {images.shape[1]} channels")
    h, w = images.shape[-2:]
    if h != resolution or w != resolution:
        raise GanprintError(f"{what} expects {resolution}x{resolution} images, got {h}x{w}")


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2 if kernel == 3 else 0)


class OriginalEncoder(nn.Module):
    """E(image, bits) -> fingerprinted image in [0, 1] (see the module docstring for the layout)."""

    def __init__(self, resolution: int, fingerprint_length: int):
        super().__init__()
        self.resolution = _check_resolution(resolution, "the original encoder")
        if isinstance(fingerprint_length, bool) or not isinstance(fingerprint_length, int) or fingerprint_length < 1:
            raise GanprintError(f"the original encoder needs a fingerprint length >= 1, got {fingerprint_length!r}")
        self.fingerprint_length = fingerprint_length

        self.secret_dense = nn.Linear(fingerprint_length, _MAP_CHANNELS * _MAP_SIZE * _MAP_SIZE)
        # Contracting path: full resolution, then four stride-2 steps (R -> R/16).
        self.conv1 = _conv(6, 32)
        self.conv2 = _conv(32, 32, stride=2)
        self.conv3 = _conv(32, 64, stride=2)
        self.conv4 = _conv(64, 128, stride=2)
        self.conv5 = _conv(128, 256, stride=2)
        # Expanding path: 2x2 "up" convs halve the channels, 3x3 convs fuse with the skip feature.
        self.up6 = _conv(256, 128, kernel=2)
        self.conv6 = _conv(256, 128)
        self.up7 = _conv(128, 64, kernel=2)
        self.conv7 = _conv(128, 64)
        self.up8 = _conv(64, 32, kernel=2)
        self.conv8 = _conv(64, 32)
        self.up9 = _conv(32, 32, kernel=2)
        self.conv9 = _conv(32 + 32 + 6, 32)  # [conv1, up9, inputs]
        self.conv10 = _conv(32, 32)
        self.residual = _conv(32, 3, kernel=1)  # named "residual" in the checkpoints, but it is the image

    @staticmethod
    def _up(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        # Nearest x2, then pad right/bottom by one so that the unpadded 2x2 conv keeps the doubled size.
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return F.relu(conv(F.pad(x, (0, 1, 0, 1))))

    def forward(self, images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        _check_images(images, self.resolution, "encoder")
        if bits.dim() != 2 or bits.shape[1] != self.fingerprint_length:
            raise GanprintError(
                f"encoder expects fingerprints of shape (N, {self.fingerprint_length}), got {tuple(bits.shape)}"
            )
        if bits.shape[0] != images.shape[0]:
            raise GanprintError(f"encoder got {images.shape[0]} images but {bits.shape[0]} fingerprints")

        fingerprint = F.relu(self.secret_dense(bits))
        fingerprint = fingerprint.view(-1, _MAP_CHANNELS, _MAP_SIZE, _MAP_SIZE)
        fingerprint = F.interpolate(fingerprint, scale_factor=self.resolution // _MAP_SIZE, mode="nearest")
        inputs = torch.cat([fingerprint, images], dim=1)  # fingerprint map first, as in the checkpoints

        conv1 = F.relu(self.conv1(inputs))
        conv2 = F.relu(self.conv2(conv1))
        conv3 = F.relu(self.conv3(conv2))
        conv4 = F.relu(self.conv4(conv3))
        conv5 = F.relu(self.conv5(conv4))

        up6 = self._up(self.up6, conv5)
        conv6 = F.relu(self.conv6(torch.cat([conv4, up6], dim=1)))
        up7 = self._up(self.up7, conv6)
        conv7 = F.relu(self.conv7(torch.cat([conv3, up7], dim=1)))
        up8 = self._up(self.up8, conv7)
        conv8 = F.relu(self.conv8(torch.cat([conv2, up8], dim=1)))
        up9 = self._up(self.up9, conv8)
        conv9 = F.relu(self.conv9(torch.cat([conv1, up9, inputs], dim=1)))
        conv10 = F.relu(self.conv10(conv9))
        return torch.sigmoid(self.residual(conv10))


class OriginalDecoder(nn.Module):
    """D(image) -> (N, L) logits; bit = logit > 0. Tied to one input size R."""

    def __init__(self, resolution: int, fingerprint_length: int):
        super().__init__()
        self.resolution = _check_resolution(resolution, "the original decoder")
        if isinstance(fingerprint_length, bool) or not isinstance(fingerprint_length, int) or fingerprint_length < 1:
            raise GanprintError(f"the original decoder needs a fingerprint length >= 1, got {fingerprint_length!r}")
        self.fingerprint_length = fingerprint_length

        # (in, out, stride) of the seven convs; ReLUs sit at the odd Sequential indices, as in the keys.
        plan = [(3, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 64, 2), (64, 128, 2), (128, 128, 2)]
        layers: list[nn.Module] = []
        for cin, cout, stride in plan:
            layers += [_conv(cin, cout, stride=stride), nn.ReLU()]
        self.decoder = nn.Sequential(*layers)
        side = resolution // 32  # total stride 32
        self.dense = nn.Sequential(
            nn.Linear(_DECODER_FEATURES * side * side, 512),
            nn.ReLU(),
            nn.Linear(512, fingerprint_length),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, self.resolution, "decoder")
        return self.dense(self.decoder(images).flatten(1))


# --------------------------------------------------------------------------------------------------
# Checkpoints


@dataclass
class OriginalCheckpoint:
    """A validated original checkpoint: CPU float32 tensors under the module's own key names."""

    kind: Literal["encoder", "decoder"]
    state_dict: dict[str, torch.Tensor]
    fingerprint_length: int
    resolution: int | None  # None for an encoder read without --image_resolution
    path: str = ""


_ENCODER_LAYERS = ["secret_dense", *(f"conv{i}" for i in range(1, 11)), "up6", "up7", "up8", "up9", "residual"]
_DECODER_LAYERS = [*(f"decoder.{i}" for i in range(0, 13, 2)), "dense.0", "dense.2"]
_EXPECTED_LAYOUTS = (
    "an original encoder (secret_dense, conv1..conv10, up6..up9, residual) "
    "or decoder (decoder.0..decoder.12, dense.0, dense.2) state dict"
)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pickle_globals(path: str) -> list[str] | None:
    """Names of the Python objects a raw pickle file refers to, found by READING its opcodes (nothing is
    executed). None if the file is not a well-formed pickle at all (garbage, truncated)."""
    names: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for op, arg, _ in pickletools.genops(f):  # stops at the first STOP opcode
                if op.name == "GLOBAL" or op.name == "INST":
                    names.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:
        return None
    return names


def _describe_load_failure(path: str, exc: Exception) -> str:
    """Turn whatever torch.load raised into one sentence about the file."""
    is_zip = zipfile.is_zipfile(path)
    if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
        # weights_only refused something. Either a valid pickle holding non-tensor objects, or garbage.
        found = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        if not is_zip:
            names = _pickle_globals(path)
            if names is None:
                return f"{path}: not a PyTorch checkpoint (unreadable or corrupted file)"
            found = found or [n for n in names if not n.startswith(("torch.", "collections."))]
        what = f" ({', '.join(dict.fromkeys(found))})" if found else ""
        return (
            f"{path}: contains Python objects other than tensors{what}; it is not a plain state dict "
            f"and was not unpickled (only weights are loaded, never code)"
        )
    if is_zip:
        return f"{path}: not a readable PyTorch checkpoint ({_one_line(exc, 100)})"
    if isinstance(exc, RuntimeError) and "zip archive" in str(exc):
        return f"{path}: truncated or corrupted PyTorch checkpoint (incomplete zip archive)"
    return f"{path}: not a PyTorch checkpoint (unreadable, truncated or corrupted file)"


def _load_tensors(path: str) -> object:
    if not os.path.exists(path):
        raise GanprintError(f"{path}: checkpoint file not found")
    if not os.path.isfile(path):
        raise GanprintError(f"{path}: not a file")
    if os.path.getsize(path) == 0:
        raise GanprintError(f"{path}: checkpoint file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. protocol warnings from the weights-only unpickler
            # weights_only: tensors and plain containers only, never arbitrary objects or code.
            # map_location: released checkpoints were saved from GPU training; open them on any machine.
            return torch.load(path, map_location="cpu", weights_only=True)
    except GanprintError:
        raise
    except Exception as exc:  # torch raises many types here (RuntimeError, EOFError, KeyError, ...)
        raise GanprintError(_describe_load_failure(path, exc)) from None


def _unwrap(obj: object, path: str) -> dict:
    if not isinstance(obj, dict):
        raise GanprintError(f"{path}: expected {_EXPECTED_LAYOUTS}, got a {type(obj).__name__}")
    for key in ("state_dict", "model"):  # common nesting of training scripts
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    keys = list(obj)
    if keys and all(isinstance(k, str) and k.startswith("module.") for k in keys):  # DataParallel
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def _layer_of(key: object) -> str:
    return key.rsplit(".", 1)[0] if isinstance(key, str) else ""


def _expected_shapes(kind: str, resolution: int, length: int) -> dict[str, torch.Size]:
    # Build on the meta device: shapes only, no memory, no initialisation cost.
    cls = OriginalEncoder if kind == "encoder" else OriginalDecoder
    with torch.device("meta"):
        module = cls(resolution, length)
    return {k: v.shape for k, v in module.state_dict().items()}


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(s) for s in t.shape) or "scalar"


def read_original_checkpoint(path: str | os.PathLike, resolution: int | None = None) -> OriginalCheckpoint:
    """Open an original ``*_encoder.pth`` or ``*_decoder.pth`` and check it against the layout.

    An encoder's weights do not depend on R, so its resolution is the ``resolution`` argument (None if not
    given; ``build_original`` then refuses). A decoder's R is inferred from ``dense.0.weight`` and checked
    against ``resolution`` when given. Every problem is a one-line GanprintError naming the file.
    """
    path = os.fspath(path)
    if resolution is not None:
        try:
            resolution = _check_resolution(resolution, "")
        except GanprintError:
            raise GanprintError(
                f"{path}: --image_resolution must be a power of two >= 32 for an original network, "
                f"got {resolution!r}"
            ) from None
    state = _unwrap(_load_tensors(path), path)

    layers = {_layer_of(k) for k in state}
    looks_encoder = bool(layers & set(_ENCODER_LAYERS))
    looks_decoder = bool(layers & set(_DECODER_LAYERS))
    if looks_encoder == looks_decoder:
        sample = ", ".join(map(str, list(state)[:3])) or "no keys"
        both = "both encoder and decoder keys" if looks_encoder else f"keys ({sample})"
        raise GanprintError(f"{path}: expected {_EXPECTED_LAYOUTS}, got {both}")
    kind = "encoder" if looks_encoder else "decoder"

    non_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        raise GanprintError(f"{path}: {kind} entry {non_tensors[0]!r} is not a tensor")

    # L and (for a decoder) R come from the weights themselves; check those anchor tensors first.
    if kind == "encoder":
        anchor = state.get("secret_dense.weight")
        if anchor is None or anchor.dim() != 2 or anchor.shape[0] != _MAP_CHANNELS * _MAP_SIZE**2:
            got = "missing" if anchor is None else _shape(anchor)
            raise GanprintError(f"{path}: encoder secret_dense.weight should be 768xL, got {got}")
        length = int(anchor.shape[1])
        shape_resolution = 32  # the encoder's shapes do not depend on R
    else:
        last, first = state.get("dense.2.weight"), state.get("dense.0.weight")
        if last is None or last.dim() != 2 or last.shape[1] != 512:
            got = "missing" if last is None else _shape(last)
            raise GanprintError(f"{path}: decoder dense.2.weight should be Lx512, got {got}")
        length = int(last.shape[0])
        if first is None or first.dim() != 2 or first.shape[0] != 512:
            got = "missing" if first is None else _shape(first)
            raise GanprintError(f"{path}: decoder dense.0.weight should be 512x(128*(R/32)^2), got {got}")
        features = int(first.shape[1])
        side = math.isqrt(features // _DECODER_FEATURES) if features % _DECODER_FEATURES == 0 else 0
        inferred = 32 * side
        if side < 1 or _DECODER_FEATURES * side * side != features or inferred & (inferred - 1):
            raise GanprintError(
                f"{path}: decoder dense.0.weight has {features} inputs, which is not 128*(R/32)^2 "
                f"for a power-of-two resolution R"
            )
        if resolution is not None and resolution != inferred:
            raise GanprintError(
                f"{path}: decoder was trained on {inferred}x{inferred} images, "
                f"but --image_resolution is {resolution}"
            )
        resolution = shape_resolution = inferred

    expected = _expected_shapes(kind, shape_resolution, length)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(map(str, unexpected[:4]))}{' ...' if len(unexpected) > 4 else ''}")
        raise GanprintError(f"{path}: not an original {kind} state dict: {'; '.join(parts)}")
    for key, want in expected.items():
        if state[key].shape != want:
            raise GanprintError(
                f"{path}: {kind} tensor {key} has shape {_shape(state[key])}, "
                f"expected {'x'.join(map(str, want))} for a {length}-bit original {kind}"
            )
        if not (state[key].is_floating_point()):
            raise GanprintError(f"{path}: {kind} tensor {key} is {state[key].dtype}, expected floating point")

    clean = {k: state[k].detach().to(device="cpu", dtype=torch.float32).contiguous() for k in expected}
    refuse_non_finite(clean, path)
    return OriginalCheckpoint(kind, clean, length, resolution, path)


def build_original(checkpoint: OriginalCheckpoint) -> nn.Module:
    """The loaded OriginalEncoder / OriginalDecoder in eval mode (strict key match)."""
    if checkpoint.resolution is None:
        raise GanprintError(
            f"{checkpoint.path or 'the original ' + checkpoint.kind}: an original {checkpoint.kind}'s weights "
            f"do not tell its image size; pass --image_resolution"
        )
    cls = OriginalEncoder if checkpoint.kind == "encoder" else OriginalDecoder
    module = cls(checkpoint.resolution, checkpoint.fingerprint_length)
    module.load_state_dict(checkpoint.state_dict, strict=True)
    return module.eval()
