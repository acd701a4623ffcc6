"""Configurations of scalable fingerprinting: the networks (stored as config.json) and the presets.

Presets (`PRESETS[name]`: a network config and training defaults):

* `paper128`, `paper256`: the paper's GPU setups (StyleGAN2 config-e widths, 512-d z and w, 8-layer
  mapping with learning-rate multiplier 0.01, 128-bit codes, modulation at every resolution, batch
  16, gamma 100 as the original 128 px config; the paper gives no 256 px gamma, 100 is kept).
* `cpu32`, `cpu64`: sized for a 2-core CPU (the 32 px networks have ~1 M parameters each), EMA
  half-life 5 kimg ramped up over the first 5 % of training (ADA's small-batch setting). They depart
  from the paper where measurements on this CPU showed the code was otherwise not learned in hours
  (docs/scalable.md has the figures): a one-layer mapping network at the full learning rate (the
  code is an identifier, it needs no disentangling); the z layer's bias starting as a random 4x4 map
  with smaller z weights (a z-independent part the code can modulate); a decoder F with a 5x
  learning rate (0.01) and a 512-wide last hidden layer; and code-loss weight 10 instead of 2 (the
  generator's incentive to carry the code was the bottleneck: bit accuracy 0.64 instead of 0.55
  after 24 kimg). Then three changes took the 32 px model from 0.76 (8-bit) after 410 kimg to 0.976
  after 100 kimg, 0.99 with the decoder tuned: learned constant "carrier" maps at every synthesis
  layer's input (`carrier_std`: the code's styles weight z-independent spatial patterns, not only
  z's features), F reading both G(z, c) and G(z, c') (`decode_both`), rounded to 8 bits
  (`decode_uint8`). With them, R1 weight 1 (gamma): at 0.1 the code took over the content (one
  code, one garment; consistency loss 0.02 -> 0.43 by 68 kimg); ADA's 0.0128 had let D win.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import GanprintError
from ..stylegan import DiscriminatorConfig, GeneratorConfig

KIND = "ganprint.scalable"  # generator G(z, c) + decoder F
KIND_FINGERPRINTED = "ganprint.scalable.fingerprinted"  # exported G_c(z): styles folded in, no F


@dataclass
class ScalableConfig:
    resolution: int = 32  # images are resolution x resolution
    fingerprint_size: int = 128  # bits of the fingerprint code c (original: --watermark-size)
    z_dim: int = 128  # latent size
    w_dim: int = 128  # style size
    g_channels: tuple[int, ...] = (128, 128, 64, 32)  # generator widths at 4x4, 8x8, ..., resolution
    d_channels: tuple[int, ...] = (128, 128, 64, 32)  # discriminator and decoder widths, same order
    mapping_layers: int = 4  # depth of the mapping network c -> w
    mapping_lr_multiplier: float = 0.01  # mapping network learning-rate multiplier
    res_modulated_range: tuple[int, int] | None = None  # resolutions modulated by c (default: 4 to resolution)
    input_constant: float = 0.0  # init std of the z layer's bias (a learned constant 4x4 map; 0: z alone)
    z_input_init: float = 1.0  # init scale of the z layer's weights
    decoder_fc_channels: int | None = None  # width of F's last hidden layer (default: its 4x4 width)
    noise: bool = True  # per-pixel noise inputs in the generator
    carrier_std: float = 0.0  # > 0: learned constant maps added to every synthesis layer's input (init std)
    z_styles: bool = False  # z also makes styles at every layer, through its own mapping network (beyond the paper)
    mbstd_group: int = 4  # discriminator minibatch-stddev group size

    def __post_init__(self) -> None:
        self.g_channels = tuple(int(c) for c in self.g_channels)
        self.d_channels = tuple(int(c) for c in self.d_channels)
        rng = self.res_modulated_range if self.res_modulated_range is not None else (4, self.resolution)
        self.res_modulated_range = tuple(int(r) for r in rng)

    # The detection protocol shared with FingerprintCodec.config (codec.folders.detect_folder).
    @property
    def fingerprint_length(self) -> int:
        return self.fingerprint_size

    def validate(self) -> "ScalableConfig":
        if not 1 <= self.fingerprint_size <= 4096:
            raise GanprintError(f"fingerprint size must be between 1 and 4096 bits, got {self.fingerprint_size}")
        low, high = self.res_modulated_range
        valid = [4 * 2**i for i in range(16) if 4 * 2**i <= self.resolution]
        if low not in valid or high not in valid or low > high:
            raise GanprintError(
                f"res-modulated-range {low}-{high} must name two resolutions between 4 and {self.resolution} "
                f"(powers of two), the first not above the second"
            )
        try:
            self.generator_config()
            self.discriminator_config()
        except ValueError as exc:
            raise GanprintError(f"bad network configuration: {exc}") from None
        return self

    def generator_config(self, folded: bool = False) -> GeneratorConfig:
        return GeneratorConfig(
            resolution=self.resolution, z_dim=self.z_dim, c_dim=self.fingerprint_size, w_dim=self.w_dim,
            channels=self.g_channels, mapping_layers=self.mapping_layers,
            mapping_lr_multiplier=self.mapping_lr_multiplier, res_modulated_range=self.res_modulated_range,
            input_constant=self.input_constant, z_input_init=self.z_input_init, noise=self.noise,
            carrier_std=self.carrier_std, z_styles=self.z_styles, folded=folded,
        ).validate()  # fmt: skip

    def discriminator_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(resolution=self.resolution, channels=self.d_channels, mbstd_group=self.mbstd_group).validate()

    def decoder_config(self) -> DiscriminatorConfig:
        """F: D's trunk (its minibatch-stddev unused), optionally with a wider last hidden layer."""
        return dataclasses.replace(self.discriminator_config(), fc_channels=self.decoder_fc_channels).validate()

    def to_dict(self, kind: str = KIND) -> dict:
        return {"kind": kind, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "ScalableConfig":
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind not in (KIND, KIND_FINGERPRINTED):
            what = f"a {kind} model" if isinstance(kind, str) else "not a ganprint model config"
            raise GanprintError(f"{source}: {what}, not a scalable fingerprinting network ({KIND})")
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names}).validate()
        except (TypeError, ValueError) as exc:
            raise GanprintError(f"{source}: bad scalable network config ({exc})") from None


@dataclass(frozen=True)
class TrainingDefaults:
    batch_size: int = 16  # images per step over all processes
    gamma: float = 100.0  # R1 weight
    lr: float = 0.002  # Adam learning rate of G, F and D
    ema_kimg: float = 10.0  # half-life of the generator's moving average, in thousands of images
    ema_rampup: float | None = None  # half-life at most this share of the images seen so far
    decoder_lr: float | None = None  # Adam learning rate of the decoder F (None: lr)
    c_reconstruction_weight: float = 2.0  # weight of F's code loss (the paper's 2)
    decode_both: bool = False  # F also reads G(z, c') (the paper: G(z, c) only)
    decode_uint8: bool = False  # F reads 8-bit rounded images, straight-through (the paper: floats)
    total_kimg: float = 25000.0  # training length


@dataclass(frozen=True)
class Preset:
    network: ScalableConfig
    training: TrainingDefaults
    description: str


def _config_e(resolution: int) -> tuple[int, ...]:
    """StyleGAN2 config-e widths: min(8192 / 2^(log2(res) - 1), 512)."""
    out, res = [], 4
    while res <= resolution:
        out.append(min(16384 // res, 512))
        res *= 2
    return tuple(out)


PRESETS: dict[str, Preset] = {
    "paper128": Preset(
        ScalableConfig(resolution=128, z_dim=512, w_dim=512, g_channels=_config_e(128), d_channels=_config_e(128),
                       mapping_layers=8, res_modulated_range=(4, 128)),
        TrainingDefaults(batch_size=16, gamma=100.0, ema_kimg=10.0, total_kimg=25000.0),
        "the paper's 128x128 setup (CelebA, LSUN Bedroom); GPUs",
    ),  # fmt: skip
    "paper256": Preset(
        ScalableConfig(resolution=256, z_dim=512, w_dim=512, g_channels=_config_e(256), d_channels=_config_e(256),
                       mapping_layers=8, res_modulated_range=(4, 256)),
        TrainingDefaults(batch_size=16, gamma=100.0, ema_kimg=10.0, total_kimg=25000.0),
        "the paper's 256x256 setup (LSUN Cat); GPUs",
    ),  # fmt: skip
    "cpu32": Preset(
        ScalableConfig(resolution=32, z_dim=128, w_dim=128, g_channels=(128, 128, 64, 32),
                       d_channels=(128, 128, 64, 32), mapping_layers=1, mapping_lr_multiplier=1.0,
                       res_modulated_range=(4, 32), input_constant=1.0, z_input_init=0.3, decoder_fc_channels=512,
                       carrier_std=1.0),
        TrainingDefaults(batch_size=16, gamma=1.0, ema_kimg=5.0, ema_rampup=0.05, decoder_lr=0.01,
                         c_reconstruction_weight=10.0, decode_both=True, decode_uint8=True, total_kimg=300.0),
        "32x32 on a 2-core CPU (~1 M parameters per network)",
    ),  # fmt: skip
    "cpu64": Preset(
        ScalableConfig(resolution=64, z_dim=128, w_dim=128, g_channels=(128, 128, 64, 32, 16),
                       d_channels=(128, 128, 64, 32, 16), mapping_layers=1, mapping_lr_multiplier=1.0,
                       res_modulated_range=(4, 64), input_constant=1.0, z_input_init=0.3, decoder_fc_channels=512,
                       carrier_std=1.0),
        TrainingDefaults(batch_size=16, gamma=1.0, ema_kimg=5.0, ema_rampup=0.05, decoder_lr=0.01,
                         c_reconstruction_weight=10.0, decode_both=True, decode_uint8=True, total_kimg=300.0),
        "64x64 on a 2-core CPU",
    ),  # fmt: skip
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise GanprintError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def parse_res_range(text: str) -> tuple[int, int]:
    """'4-128' -> (4, 128)."""
    low, sep, high = str(text).strip().partition("-")
    try:
        if not sep:
            raise ValueError
        return int(low), int(high)
    except ValueError:
        raise GanprintError(f"res-modulated-range {text!r}: expected two resolutions like 4-128") from None
