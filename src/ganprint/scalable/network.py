"""ScalableNetwork: a trained generator G(z, c) with its decoder F, or an exported G_c(z).

    net = ScalableNetwork.from_pretrained("scalable-32")    # shipped name, model folder or run folder
    images = net.generate(z, c)                               # (N, 3, R, R) in [0, 1]
    result = net.detect(images, expected=c[0])                # DetectionResult: bits, p-values, verdicts

Model folders hold config.json + model.safetensors. A full network (`kind: ganprint.scalable`) stores
`G.*` (the moving-average generator) and `F.*` (the decoder); an exported fingerprinted model
(`kind: ganprint.scalable.fingerprinted`) stores only the folded generator and its fingerprint.
Images are [0, 1] outside and [-1, 1] inside the networks.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .. import checkpoint
from ..detection import DEFAULT_FALSE_POSITIVE_RATE, DetectionResult
from ..device import resolve_device
from ..errors import GanprintError
from ..fingerprints import bits_to_hex, bits_to_str, parse_fingerprint
from ..pretrained import resolve_model_dir
from ..stylegan import Decoder, Generator
from .config import KIND, KIND_FINGERPRINTED, ScalableConfig


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Network range [-1, 1] -> [0, 1], clamped."""
    return ((images + 1) / 2).clamp(0, 1)


def from_unit(images: torch.Tensor) -> torch.Tensor:
    return images * 2 - 1


def quantize_unit(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images rounded to the 256 levels a PNG stores."""
    return torch.round(images.clamp(0, 1) * 255) / 255


def quantize_straight_through(images: torch.Tensor) -> torch.Tensor:
    """Network-range images as a PNG stores them (clamped, 8 bits): lets a decoder train on what it
    will read from files. The rounding passes gradients straight through; the clamp does not (a
    straight-through clamp lets the generator push pixels ever further out of range, chasing a
    decoder that only sees the range's edge: it made a training run diverge)."""
    clamped = images.clamp(-1, 1)
    return clamped + (from_unit(quantize_unit(to_unit(clamped))) - clamped).detach()


class ScalableNetwork(nn.Module):
    """G (and F): `fingerprint` is set for an exported model, whose G has no fingerprint input."""

    def __init__(self, config: ScalableConfig, decoder: bool = True, fingerprint: torch.Tensor | None = None):
        super().__init__()
        self.config = config.validate()
        self.G = Generator(config.generator_config(folded=fingerprint is not None))
        self.F = Decoder(config.decoder_config(), config.z_dim, config.fingerprint_size) if decoder else None
        self.fingerprint = None if fingerprint is None else fingerprint.detach().float().cpu()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def decoder(self) -> Decoder | None:  # detection protocol (codec.folders.detect_folder)
        return self.F

    @property
    def is_fingerprinted(self) -> bool:
        return self.fingerprint is not None

    # ------------------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(self, z: torch.Tensor, c: torch.Tensor | None = None, noise_mode: str = "const",
                 noise: list[torch.Tensor] | None = None) -> torch.Tensor:  # fmt: skip
        """Images in [0, 1] for latents z (N, z_dim) and codes c (N, L) (None for an exported model)."""
        z = z.to(self.device)
        c = None if c is None else c.to(self.device).float()
        if noise is not None:
            noise = [n.to(self.device) for n in noise]
        return to_unit(self.G(z, c, noise_mode=noise_mode, noise=noise))

    def parse_fingerprint(self, text: str) -> torch.Tensor:
        return parse_fingerprint(text, self.config.fingerprint_size)

    # ------------------------------------------------------------------------- detection
    @torch.no_grad()
    def decode(self, images: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """(z estimates, c logits) of images (N, 3, R, R) in [0, 1], on the CPU."""
        if self.F is None:
            raise GanprintError("this model has no decoder (an exported fingerprinted generator); "
                                "detect with the full network it was exported from")  # fmt: skip
        r = self.config.resolution
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, r, r):
            raise GanprintError(f"expected images of shape (N, 3, {r}, {r}), got {tuple(images.shape)}")
        self.F.eval()
        zs, cs = [], []
        for start in range(0, images.shape[0], batch_size):
            z_hat, logits = self.F(from_unit(images[start : start + batch_size].to(self.device).float()))
            zs.append(z_hat.cpu())
            cs.append(logits.cpu())
        return torch.cat(zs), torch.cat(cs)

    def decode_logits(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """c logits (N, L) of images in [0, 1]; bit = logit > 0."""
        return self.decode(images, batch_size)[1]

    def detect(self, images: torch.Tensor, expected: torch.Tensor | str | None = None,
               false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE) -> DetectionResult:  # fmt: skip
        if isinstance(expected, str):
            expected = self.parse_fingerprint(expected)
        return DetectionResult.from_logits(self.decode_logits(images), expected, false_positive_rate, images=images)

    # ------------------------------------------------------------------------- files
    def config_dict(self) -> dict:
        if self.is_fingerprinted:
            fp = self.fingerprint
            return {**self.config.to_dict(KIND_FINGERPRINTED), "fingerprint": bits_to_str(fp),
                    "fingerprint_hex": bits_to_hex(fp)}  # fmt: skip
        return self.config.to_dict(KIND)

    def save_pretrained(self, directory: str | os.PathLike, extra: dict | None = None) -> Path:
        state = {f"G.{k}": v for k, v in self.G.state_dict().items()}
        if self.F is not None:
            state.update({f"F.{k}": v for k, v in self.F.state_dict().items()})
        return checkpoint.save_pretrained(directory, {**self.config_dict(), **(extra or {})}, state)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> "ScalableNetwork":
        directory = resolve_network_dir(name_or_path)
        raw = checkpoint.read_config(directory)
        config = ScalableConfig.from_dict(raw, str(directory / checkpoint.CONFIG_NAME))
        fingerprint = None
        if raw["kind"] == KIND_FINGERPRINTED:
            try:
                fingerprint = parse_fingerprint(str(raw.get("fingerprint", "")), config.fingerprint_size)
            except GanprintError as exc:
                raise GanprintError(f"{directory}: bad fingerprint in config ({exc})") from None
        weights = checkpoint.read_weights(directory)
        net = cls(config, decoder=any(k.startswith("F.") for k in weights), fingerprint=fingerprint)
        checkpoint.load_state(net, weights, str(directory / checkpoint.WEIGHTS_NAME))
        return net.to(resolve_device(device)).eval()


def resolve_network_dir(name_or_path: str | os.PathLike) -> Path:
    """A model folder, a shipped model's name, or a training run folder (its latest snapshot)."""
    path = Path(name_or_path)
    if path.is_file():
        raise GanprintError(f"{path}: expected a network folder (config.json + model.safetensors) or a run folder; "
                            "the original tool's .pkl networks are pickles, which ganprint does not load")  # fmt: skip
    if path.is_dir() and not (path / checkpoint.CONFIG_NAME).is_file():
        snapshots = sorted(p for p in path.glob("network-snapshot-*") if (p / checkpoint.CONFIG_NAME).is_file())
        if snapshots:
            return snapshots[-1]
        raise GanprintError(f"{path}: neither a model folder (config.json + model.safetensors) nor a run "
                            "folder with network-snapshot-* folders")  # fmt: skip
    return resolve_model_dir(name_or_path)
