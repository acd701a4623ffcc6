"""An unconditional StyleGAN2-style generator G(z): its config, its presets and its model folder.

    net = GanNetwork.from_pretrained("runs/00000-gan-cpu32-32px")   # model folder or run folder
    images = net.generate(z)                                         # (N, 3, R, R) in [0, 1]

The networks are `ganprint.stylegan`'s with `c_dim = 0`: z goes through the mapping network to the
style w and the synthesis starts from a learned 4x4 constant (every layer modulated). Model folders
hold config.json (`kind: ganprint.gan`) + model.safetensors with the moving-average generator `G.*`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import checkpoint
from ..device import resolve_device
from ..errors import GanprintError
from ..scalable.config import PRESETS as SCALABLE_PRESETS
from ..scalable.config import Preset
from ..scalable.network import resolve_network_dir, to_unit
from ..stylegan import DiscriminatorConfig, Generator, GeneratorConfig

KIND = "ganprint.gan"


@dataclass
class GanConfig:
    resolution: int = 32  # images are resolution x resolution
    z_dim: int = 128  # latent size
    w_dim: int = 128  # style size
    g_channels: tuple[int, ...] = (128, 128, 64, 32)  # generator widths at 4x4, 8x8, ..., resolution
    d_channels: tuple[int, ...] = (128, 128, 64, 32)  # discriminator widths, same order
    mapping_layers: int = 4  # depth of the mapping network z -> w
    mapping_lr_multiplier: float = 0.01  # mapping network learning-rate multiplier (StyleGAN2)
    noise: bool = True  # per-pixel noise inputs in the generator
    mbstd_group: int = 4  # discriminator minibatch-stddev group size
    carrier_std: float = 0.0  # > 0: learned constant maps added to every synthesis layer's input (init std)

    def __post_init__(self) -> None:
        self.g_channels = tuple(int(c) for c in self.g_channels)
        self.d_channels = tuple(int(c) for c in self.d_channels)

    def validate(self) -> "GanConfig":
        try:
            self.generator_config()
            self.discriminator_config()
        except (ValueError, TypeError) as exc:
            raise GanprintError(f"bad GAN network configuration: {exc}") from None
        return self

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(
            resolution=self.resolution, z_dim=self.z_dim, c_dim=0, w_dim=self.w_dim, channels=self.g_channels,
            mapping_layers=self.mapping_layers, mapping_lr_multiplier=self.mapping_lr_multiplier,
            res_modulated_range=(4, self.resolution), noise=self.noise, carrier_std=self.carrier_std,
        ).validate()  # fmt: skip

    def discriminator_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(resolution=self.resolution, channels=self.d_channels, mbstd_group=self.mbstd_group).validate()

    def to_dict(self) -> dict:
        return {"kind": KIND, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "GanConfig":
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind != KIND:
            what = f"a {kind} model" if isinstance(kind, str) else "not a ganprint model config"
            raise GanprintError(f"{source}: {what}, not an unconditional GAN ({KIND})")
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names}).validate()
        except TypeError as exc:
            raise GanprintError(f"{source}: bad GAN config ({exc})") from None


def _from_scalable(name: str, description: str) -> Preset:
    """The scalable preset's widths and training defaults, without the fingerprint input."""
    p = SCALABLE_PRESETS[name]
    n = p.network
    # Carrier maps, started small (std 0.1, not the scalable presets' 1): at 60 kimg they took the
    # Frechet distance of a GAN on Fashion-MNIST from 1.89 to 0.76, and of one on fingerprinted data
    # from 9.4 to 0.90 (a fixed fine pattern gets a path of its own; docs/transfer.md).
    config = GanConfig(resolution=n.resolution, z_dim=n.z_dim, w_dim=n.w_dim, g_channels=n.g_channels,
                       d_channels=n.d_channels, mapping_layers=n.mapping_layers,
                       mapping_lr_multiplier=n.mapping_lr_multiplier, noise=n.noise, mbstd_group=n.mbstd_group,
                       carrier_std=0.1)  # fmt: skip
    # The unconditional GAN keeps StyleGAN2-ADA's small-batch R1 weight (0.0002 R^2 / batch); the
    # scalable presets raised theirs to hold off a discriminator that also fights the code.
    training = dataclasses.replace(p.training, gamma=round(0.0002 * n.resolution**2 / p.training.batch_size, 4))
    return Preset(config, training, description)  # type: ignore[arg-type]


PRESETS: dict[str, Preset] = {
    "cpu32": _from_scalable("cpu32", "32x32 on a 2-core CPU (~1 M parameters per network)"),
    "cpu64": _from_scalable("cpu64", "64x64 on a 2-core CPU"),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise GanprintError(f"unknown GAN preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


class GanNetwork(nn.Module):
    """A trained unconditional generator (the moving average of training)."""

    def __init__(self, config: GanConfig):
        super().__init__()
        self.config = config.validate()
        self.G = Generator(config.generator_config())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def generate(self, z: torch.Tensor, noise_mode: str = "const", noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Images in [0, 1] for latents z (N, z_dim)."""
        if noise is not None:
            noise = [n.to(self.device) for n in noise]
        return to_unit(self.G(z.to(self.device), None, noise_mode=noise_mode, noise=noise))

    def save_pretrained(self, directory: str | os.PathLike, extra: dict | None = None) -> Path:
        state = {f"G.{k}": v for k, v in self.G.state_dict().items()}
        return checkpoint.save_pretrained(directory, {**self.config.to_dict(), **(extra or {})}, state)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> "GanNetwork":
        """A model folder (config.json + model.safetensors) or a run folder (its latest snapshot)."""
        directory = resolve_network_dir(name_or_path)
        config = GanConfig.from_dict(checkpoint.read_config(directory), str(directory / checkpoint.CONFIG_NAME))
        net = cls(config)
        checkpoint.load_state(net, checkpoint.read_weights(directory), str(directory / checkpoint.WEIGHTS_NAME))
        return net.to(resolve_device(device)).eval()
