"""StyleGAN2-style networks, written for reading and for speed on a CPU.

    G = Generator(GeneratorConfig(resolution=32, z_dim=128, c_dim=128, channels=(128, 128, 64, 32)))
    images = G(z, c)                        # (N, 3, 32, 32), roughly in [-1, 1]
    D = Discriminator(DiscriminatorConfig(resolution=32, channels=(128, 128, 64, 32)))
    F = Decoder(DiscriminatorConfig(...), z_dim=128, c_dim=128)
    z_hat, c_logits = F(images)

Two ways in for the generator's inputs:

* `c_dim > 0` (scalable fingerprinting, Yu et al. ICLR 2022): the fingerprint code c (bits as 0/1
  floats) goes through the mapping network to the style w used by every layer; the latent z enters
  through a dense layer that makes the 4x4 feature map. Its bias can start as a random map
  (`input_constant`, like StyleGAN2's learned constant) and its weights smaller (`z_input_init`):
  then the first layers carry a z-independent part for the code to modulate, which lets the decoder
  learn to read the code much sooner (measured for the CPU presets; the paper's setup uses 0 and 1).
  With `z_styles` (beyond the paper), z also goes through a mapping network of its own to a second
  style w_z, and every layer's style is the product A(w) * A_z(w_z): z shapes every layer as in an
  unconditional StyleGAN2. Folding a code then bakes in A(w) only, exactly (demodulation of
  W * A(w) modulated by A_z(w_z) equals that of W modulated by the product), and the exported model
  keeps z's mapping network and affines.
* `c_dim == 0` (an ordinary unconditional StyleGAN2): z goes through the mapping network (after
  normalising its second moment) to w, and the synthesis starts from a learned 4x4 constant.

Pieces (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", 2020):

* equalised learning rate: weights are stored N(0, 1) / lr_multiplier and scaled at run time by
  lr_multiplier / sqrt(fan_in), so Adam's step is the same for every layer;
* modulated convolution: each input channel is scaled by a style s = A(w) (affine, bias 1), then
  every output channel is divided by the norm of its effective weights ("demodulation"). Written in
  the form that is fast on a CPU: scale the activations by s, run ONE convolution shared by the
  batch, scale the outputs by the demodulation coefficients. `modulated_conv2d(..., fused=True)` is
  the grouped-convolution reference (one weight per sample); both compute the same function;
* carrier maps (`carrier_std` > 0, the CPU presets of scalable fingerprinting): every synthesis
  layer adds a learned constant map to its input, so the styles also weight z-independent spatial
  patterns; the code's traces then need not ride on what z made (docs/scalable.md, "Round 3");
* layers outside `res_modulated_range` are "fixed": the same demodulated convolution with the style
  held at 1, so c (or w) has no path into them; an exported model's layers are "folded": styles and
  demodulation baked into the weights (`Generator.fold`);
* skip generator: a to-RGB layer (modulated, not demodulated) per resolution, summed after
  upsampling; per-pixel noise with a learned strength; bias + leaky ReLU (slope 0.2, gain sqrt 2);
* residual discriminator with minibatch standard deviation; the decoder F is the same trunk without
  minibatch-stddev, ending in z_dim + c_dim outputs (a z estimate and c logits).

Resampling, chosen for CPU cost: the generator's upsampling convolutions are StyleGAN2's (a 3x3
transposed convolution with stride 2, then a [1,3,3,1] blur), a quarter of the work of upsampling
first; the skip images are upsampled bilinearly (the [1,3,3,1] filter, edge-clamped at the border);
the discriminator and decoder average-pool 2x2 before their downsampling convolutions, which then
run at the lower resolution.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
LAYER_KINDS = ("modulated", "fixed", "folded")


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _blur_kernel(channels: int, like: torch.Tensor) -> torch.Tensor:
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=like.dtype, device=like.device)
    kernel = torch.outer(taps, taps)
    return (kernel * (4 / kernel.sum())).expand(channels, 1, 4, 4)  # gain 4 keeps the mean after upsampling


def conv_up2x(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Convolve and upsample by 2: transposed conv (stride 2) with weight (O, I, k, k), then blur."""
    out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)  # (N, O, 2H + k - 2, ...)
    pad = (weight.shape[-1] - 1) // 2  # 1 for 3x3: 2H+1 -> 2H+3 -> 2H after the 4-tap blur
    return F.conv2d(out, _blur_kernel(out.shape[1], out), padding=pad, groups=out.shape[1])


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


# ----------------------------------------------------------------------------- configs


def _resolutions(resolution: int) -> list[int]:
    return [4 * 2**i for i in range(int(math.log2(resolution)) - 1)]


def _check_resolution(resolution: int) -> None:
    if not isinstance(resolution, int) or resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")


def _check_channels(channels: tuple[int, ...], resolution: int) -> None:
    n = len(_resolutions(resolution))
    if len(channels) != n or any(int(ch) < 1 for ch in channels):
        raise ValueError(f"channels needs {n} positive widths (4x4 up to {resolution}x{resolution}), got {channels}")


@dataclass
class GeneratorConfig:
    resolution: int = 32  # output images are resolution x resolution (a power of two >= 4)
    z_dim: int = 128  # latent size
    c_dim: int = 128  # fingerprint bits; 0 = unconditional StyleGAN2 (z -> mapping -> w)
    w_dim: int = 128  # style size
    channels: tuple[int, ...] = (128, 128, 64, 32)  # feature maps at 4x4, 8x8, ... resolution
    mapping_layers: int = 4  # depth of the mapping MLP
    mapping_lr_multiplier: float = 0.01  # the mapping network learns 100x slower (as StyleGAN2)
    res_modulated_range: tuple[int, int] = (4, 32)  # resolutions whose layers take the style
    input_constant: float = 0.0  # c_dim > 0: init std of the z layer's bias, a learned 4x4 constant z is added to
    z_input_init: float = 1.0  # c_dim > 0: init scale of the z layer's weights (1: equalised-lr default)
    noise: bool = True  # per-pixel noise inputs
    carrier_std: float = 0.0  # > 0: every synthesis layer adds a learned constant map (init std) to its input
    z_styles: bool = False  # c_dim > 0: z also goes through a mapping network of its own to styles at every layer
    img_channels: int = 3
    folded: bool = False  # an exported model: styles baked into weights, no mapping, no c input

    def __post_init__(self) -> None:
        self.channels = tuple(int(ch) for ch in self.channels)
        self.res_modulated_range = tuple(int(r) for r in self.res_modulated_range)

    def validate(self) -> "GeneratorConfig":
        _check_resolution(self.resolution)
        _check_channels(self.channels, self.resolution)
        if self.z_dim < 1 or self.w_dim < 1 or self.c_dim < 0 or self.mapping_layers < 1:
            raise ValueError("z_dim, w_dim and mapping_layers must be positive and c_dim >= 0")
        low, high = self.res_modulated_range
        if len(self.res_modulated_range) != 2 or low > high:
            raise ValueError(f"res_modulated_range must be (low, high) with low <= high, got {self.res_modulated_range}")
        if self.z_styles and self.c_dim == 0:
            raise ValueError("z_styles needs a fingerprint input (c_dim > 0); without one z already makes the styles")
        return self

    def channels_at(self, res: int) -> int:
        return self.channels[int(math.log2(res)) - 2]

    def layer_kind(self, res: int) -> str:
        if self.folded:
            return "folded"
        low, high = self.res_modulated_range
        return "modulated" if low <= res <= high else "fixed"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GeneratorConfig":
        return cls(**data).validate()


@dataclass
class DiscriminatorConfig:
    resolution: int = 32  # input images are resolution x resolution
    channels: tuple[int, ...] = (128, 128, 64, 32)  # feature maps at 4x4, 8x8, ... resolution
    mbstd_group: int = 4  # minibatch-stddev group size (0: no minibatch-stddev)
    mbstd_channels: int = 1  # stddev feature maps appended
    fc_channels: int | None = None  # width of the dense layer before the output (default: the 4x4 width)
    img_channels: int = 3

    def __post_init__(self) -> None:
        self.channels = tuple(int(ch) for ch in self.channels)

    def validate(self) -> "DiscriminatorConfig":
        _check_resolution(self.resolution)
        _check_channels(self.channels, self.resolution)
        return self

    def channels_at(self, res: int) -> int:
        return self.channels[int(math.log2(res)) - 2]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DiscriminatorConfig":
        return cls(**data).validate()


# ----------------------------------------------------------------------------- layers


class EqualizedLinear(nn.Module):
    """Dense layer with equalised learning rate; optional bias + leaky ReLU."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_multiplier: float = 1.0,
                 activation: bool = False, weight_init: float = 1.0, bias_init_std: float = 0.0):  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) * weight_init / lr_multiplier)
        bias = torch.full((out_dim,), float(bias_init))
        if bias_init_std:  # drawn only when asked, so other layers' initial weights stay the same
            bias = bias + torch.randn(out_dim) * bias_init_std
        self.bias = nn.Parameter(bias / lr_multiplier)
        self.weight_gain = lr_multiplier / math.sqrt(in_dim)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return lrelu(x) if self.activation else x


class EqualizedConv2d(nn.Module):
    """Plain convolution with equalised learning rate (discriminator and decoder)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = True, activation: bool = True,
                 down: bool = False):  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_ch * kernel * kernel)
        self.activation, self.down, self.padding = activation, down, kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:  # pool, then convolve at the lower resolution (StyleGAN2: blur, strided conv)
            x = downsample2x(x)
        if not self.activation:
            return F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        # lrelu(y) * gain == lrelu(y * gain): the gain goes into the small weight and bias, which saves
        # a pass over the large output forward and backward (same function of the parameters).
        bias = self.bias * LRELU_GAIN if self.bias is not None else None
        x = F.conv2d(x, self.weight * (self.weight_gain * LRELU_GAIN), bias, padding=self.padding)
        return F.leaky_relu(x, LRELU_SLOPE)


def _product(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """The product of two optional style vectors (None: all ones)."""
    return b if a is None else a if b is None else a * b


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor | None, demodulate: bool = True,
                     up: bool = False, fused: bool = False, eps: float = 1e-8) -> torch.Tensor:  # fmt: skip
    """Convolve x (N, I, H, W) with weight (O, I, k, k) modulated per sample by styles (N, I).

    styles=None means a style of 1 for every channel. With `demodulate`, each output channel of each
    sample is divided by the L2 norm of its modulated weights. `up`: `conv_up2x` instead of a
    same-size convolution.

    Fast form (default): conv(x * s, W) * d with d[n, o] = 1 / sqrt(sum_i s[n, i]^2 sum_k W[o, i, k]^2);
    one convolution for the whole batch. Fused form: a grouped convolution with the weights
    W[o, i, k] * s[n, i] * d[n, o] of each sample (StyleGAN2's formulation; slower on a CPU).
    """
    n, in_ch = x.shape[:2]
    padding = weight.shape[-1] // 2
    if fused:
        s = styles if styles is not None else x.new_ones(n, in_ch)
        w = weight.unsqueeze(0) * s.view(n, 1, in_ch, 1, 1)  # (N, O, I, k, k)
        if demodulate:
            w = w * (w.square().sum(dim=(2, 3, 4), keepdim=True) + eps).rsqrt()
        x = x.reshape(1, n * in_ch, *x.shape[2:])
        if up:  # grouped transposed conv: weights (N*I, O, k, k), then the per-channel blur
            out = F.conv_transpose2d(x, w.transpose(1, 2).reshape(n * in_ch, -1, *w.shape[3:]), stride=2, groups=n)
            out = F.conv2d(out, _blur_kernel(out.shape[1], out), padding=(weight.shape[-1] - 1) // 2, groups=out.shape[1])
        else:
            out = F.conv2d(x, w.reshape(-1, in_ch, *w.shape[3:]), padding=padding, groups=n)
        return out.reshape(n, -1, *out.shape[2:])
    if styles is not None:
        x = x * styles.view(n, in_ch, 1, 1)
    out = conv_up2x(x, weight) if up else F.conv2d(x, weight, padding=padding)
    if demodulate:
        s2 = styles.square() if styles is not None else x.new_ones(1, in_ch)
        d = (s2 @ weight.square().sum(dim=(2, 3)).t() + eps).rsqrt()  # (N or 1, O)
        out = out * d.view(d.shape[0], -1, 1, 1)
    return out


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling), noise, bias, leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, kind: str, up: bool = False,
                 noise: bool = True, carrier_std: float = 0.0, z_styles: bool = False):  # fmt: skip
        super().__init__()
        assert kind in LAYER_KINDS
        self.kind, self.up, self.resolution = kind, up, resolution
        # With z styles, a folded layer keeps its z modulation and demodulates at run time.
        self.demodulate = kind != "folded" or z_styles
        self.affine_z = EqualizedLinear(w_dim, in_ch, bias_init=1.0) if z_styles else None
        # A z-independent map the styles can weight: the code gets spatial patterns of its own.
        in_res = resolution // 2 if up else resolution
        self.carrier = nn.Parameter(torch.randn(1, in_ch, in_res, in_res) * carrier_std) if carrier_std > 0 else None
        self.fused = False  # True: the grouped-convolution form (benchmarks and tests)
        self.affine = EqualizedLinear(w_dim, in_ch, bias_init=1.0) if kind == "modulated" else None
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 3, 3))
        self.weight_gain = 1.0 if kind == "folded" else 1 / math.sqrt(in_ch * 9)
        self.bias = nn.Parameter(torch.zeros(out_ch))
        if noise:
            self.noise_strength = nn.Parameter(torch.zeros(()))
            self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        else:
            self.noise_strength = None

    def styles(self, w: torch.Tensor) -> torch.Tensor | None:
        return self.affine(w) if self.affine is not None else None

    def forward(self, x: torch.Tensor, w: torch.Tensor | None, noise_mode: str = "const",
                noise: torch.Tensor | None = None, w_z: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        styles = _product(self.styles(w) if self.affine is not None else None,
                          self.affine_z(w_z) if self.affine_z is not None else None)  # fmt: skip
        if self.carrier is not None:
            x = x + self.carrier
        x = modulated_conv2d(x, self.weight * self.weight_gain, styles, demodulate=self.demodulate,
                             up=self.up, fused=self.fused)  # fmt: skip
        if self.noise_strength is not None and noise_mode != "none":
            if noise is None:
                noise = self.noise_const if noise_mode == "const" else torch.randn_like(x[:, :1])
            x = x + noise * self.noise_strength
        return lrelu(x + self.bias.view(1, -1, 1, 1))

    def folded_weight(self, w: torch.Tensor | None) -> torch.Tensor:
        """The weight of an equivalent "folded" layer for one style vector w (1, w_dim)."""
        weight = self.weight * self.weight_gain
        if self.kind == "folded":
            return weight
        s = self.styles(w) if self.affine is not None else weight.new_ones(1, weight.shape[1])
        weight = weight * s.view(1, -1, 1, 1)
        if self.affine_z is not None:  # z's styles still follow: demodulation stays at run time
            return weight
        return weight * (weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).rsqrt()


class ToRGB(nn.Module):
    """Modulated 1x1 convolution without demodulation, plus bias (no activation)."""

    def __init__(self, in_ch: int, img_channels: int, w_dim: int, kind: str, z_styles: bool = False):
        super().__init__()
        self.kind = kind
        self.fused = False
        self.affine = EqualizedLinear(w_dim, in_ch, bias_init=1.0) if kind == "modulated" else None
        self.affine_z = EqualizedLinear(w_dim, in_ch, bias_init=1.0) if z_styles else None
        self.weight = nn.Parameter(torch.randn(img_channels, in_ch, 1, 1))
        self.weight_gain = 1.0 if kind == "folded" else 1 / math.sqrt(in_ch)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def styles(self, w: torch.Tensor) -> torch.Tensor | None:
        return self.affine(w) if self.affine is not None else None

    def forward(self, x: torch.Tensor, w: torch.Tensor | None, w_z: torch.Tensor | None = None) -> torch.Tensor:
        styles = _product(self.styles(w) if self.affine is not None else None,
                          self.affine_z(w_z) if self.affine_z is not None else None)  # fmt: skip
        x = modulated_conv2d(x, self.weight * self.weight_gain, styles, demodulate=False, fused=self.fused)
        return x + self.bias.view(1, -1, 1, 1)

    def folded_weight(self, w: torch.Tensor | None) -> torch.Tensor:
        weight = self.weight * self.weight_gain
        if self.affine is None:
            return weight
        return weight * self.styles(w).view(1, -1, 1, 1)


class MappingNetwork(nn.Module):
    """MLP from the code (c, or z when unconditional) to the style w."""

    def __init__(self, in_dim: int, w_dim: int, layers: int, lr_multiplier: float, normalize_input: bool):
        super().__init__()
        self.normalize_input = normalize_input
        dims = [in_dim] + [w_dim] * layers
        self.net = nn.Sequential(*[
            EqualizedLinear(a, b, lr_multiplier=lr_multiplier, activation=True) for a, b in zip(dims[:-1], dims[1:])
        ])  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(normalize_2nd_moment(x) if self.normalize_input else x)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: [upsampling conv,] conv, to-RGB."""

    def __init__(self, cfg: GeneratorConfig, res: int):
        super().__init__()
        kind, out_ch = cfg.layer_kind(res), cfg.channels_at(res)
        self.resolution = res
        self.conv0 = (
            SynthesisLayer(cfg.channels_at(res // 2), out_ch, cfg.w_dim, res, kind, up=True, noise=cfg.noise,
                           carrier_std=cfg.carrier_std, z_styles=cfg.z_styles)
            if res > 4 else None
        )  # fmt: skip
        self.conv1 = SynthesisLayer(out_ch, out_ch, cfg.w_dim, res, kind, noise=cfg.noise, carrier_std=cfg.carrier_std,
                                    z_styles=cfg.z_styles)  # fmt: skip
        self.torgb = ToRGB(out_ch, cfg.img_channels, cfg.w_dim, kind, z_styles=cfg.z_styles)

    def layers(self) -> list[SynthesisLayer]:
        return [layer for layer in (self.conv0, self.conv1) if layer is not None]

    def forward(self, x, img, w, noise_mode="const", noise=None, w_z=None):
        for layer in self.layers():
            x = layer(x, w, noise_mode, noise.pop(0) if noise else None, w_z)
        y = self.torgb(x, w, w_z)
        img = y if img is None else upsample2x(img) + y
        return x, img


class Generator(nn.Module):
    """G(z, c) -> images (N, img_channels, R, R), roughly in [-1, 1]. See the module docstring."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = cfg = config.validate()
        ch4 = cfg.channels_at(4)
        # The mapping network exists when anything feeds w: c (fingerprinting) or z (unconditional).
        self.mapping = (
            None if cfg.folded
            else MappingNetwork(cfg.c_dim or cfg.z_dim, cfg.w_dim, cfg.mapping_layers, cfg.mapping_lr_multiplier,
                                normalize_input=cfg.c_dim == 0)
        )  # fmt: skip
        # z's own mapping network (z_styles): kept by folding, which bakes in only c's styles.
        self.mapping_z = (MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.mapping_layers, cfg.mapping_lr_multiplier,
                                         normalize_input=True) if cfg.z_styles else None)  # fmt: skip
        if self.z_through_mapping:
            self.const = nn.Parameter(torch.randn(ch4, 4, 4))
            self.z_input = None
        else:  # z enters the 4x4 map through its own dense layer (scalable fingerprinting)
            self.z_input = EqualizedLinear(cfg.z_dim, ch4 * 16, activation=True, weight_init=cfg.z_input_init,
                                           bias_init_std=cfg.input_constant)  # fmt: skip
        self.blocks = nn.ModuleList([SynthesisBlock(cfg, res) for res in _resolutions(cfg.resolution)])

    @property
    def z_through_mapping(self) -> bool:
        return self.config.c_dim == 0 and not self.config.folded

    @property
    def takes_c(self) -> bool:
        return self.config.c_dim > 0 and not self.config.folded

    def noise_shapes(self) -> list[tuple[int, int, int]]:
        """Shapes (1, H, W) of the per-layer noise inputs, in the order `noise=` expects them."""
        return [(1, layer.resolution, layer.resolution) for b in self.blocks for layer in b.layers()
                if layer.noise_strength is not None]  # fmt: skip

    def mapping_w(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor | None:
        if self.mapping is None:
            return None
        return self.mapping(c.float() if self.takes_c else z)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, noise_mode: str = "const",
                noise: list[torch.Tensor] | None = None) -> torch.Tensor:  # fmt: skip
        """noise_mode: "const" (the stored noise maps, deterministic), "random" or "none"; `noise`, a
        list of tensors shaped like `noise_shapes()` with a batch dimension, overrides them."""
        if self.takes_c and (c is None or c.shape != (z.shape[0], self.config.c_dim)):
            got = None if c is None else tuple(c.shape)
            raise ValueError(f"this generator needs c of shape ({z.shape[0]}, {self.config.c_dim}), got {got}")
        if not self.takes_c and c is not None:
            raise ValueError("this generator has no fingerprint input (c_dim == 0 or folded); pass c=None")
        if noise_mode not in ("const", "random", "none"):
            raise ValueError(f"noise_mode must be const, random or none, got {noise_mode!r}")
        w = self.mapping_w(z, c)
        w_z = self.mapping_z(z) if self.mapping_z is not None else None
        if self.z_input is not None:
            x = self.z_input(z).view(z.shape[0], -1, 4, 4)
        else:
            x = self.const.unsqueeze(0).expand(z.shape[0], -1, -1, -1)
        noise = list(noise) if noise is not None else None
        img = None
        for block in self.blocks:
            x, img = block(x, img, w, noise_mode, noise, w_z)
        return img

    @torch.no_grad()
    def fold(self, c: torch.Tensor) -> "Generator":
        """A standalone generator with the styles of one code c (c_dim,) baked into its weights:
        folded(z) == self(z, c.expand(N, -1)). No mapping network, no fingerprint input."""
        if not self.takes_c:
            raise ValueError("only a fingerprint-conditioned generator (c_dim > 0, not folded) can be folded")
        w = self.mapping(c.float().view(1, -1).to(self.z_input.weight.device))
        folded = Generator(dataclasses.replace(self.config, folded=True)).to(w.device)
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("mapping.") and ".affine." not in k}
        # (mapping_z.* and .affine_z.* stay: z's styles are not part of the fingerprint)
        for name, module in self.named_modules():
            if isinstance(module, (SynthesisLayer, ToRGB)):
                state[f"{name}.weight"] = module.folded_weight(w)
        folded.load_state_dict(state)
        return folded


# ----------------------------------------------------------------------------- discriminator / decoder


class MinibatchStdDev(nn.Module):
    """Append the mean standard deviation over groups of consecutive samples as extra channels."""

    def __init__(self, group_size: int, channels: int = 1):
        super().__init__()
        self.group_size, self.channels = group_size, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if n % g:
            raise ValueError(f"minibatch-stddev groups of {g} do not divide the batch of {n}")
        f = self.channels
        y = x.reshape(n // g, g, f, c // f, h, w)  # groups of consecutive samples
        y = (y - y.mean(dim=1, keepdim=True)).square().mean(dim=1)
        y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))  # (n/g, f)
        y = y.reshape(n // g, 1, f, 1, 1).expand(-1, g, -1, h, w).reshape(n, f, h, w)
        return torch.cat([x, y], dim=1)


class ResidualBlock(nn.Module):
    """conv 3x3, conv 3x3 + downsample, plus a 1x1 downsampled skip; summed and divided by sqrt 2."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv0 = EqualizedConv2d(in_ch, in_ch, 3)
        self.conv1 = EqualizedConv2d(in_ch, out_ch, 3, down=True)
        self.skip = EqualizedConv2d(in_ch, out_ch, 1, bias=False, activation=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) / math.sqrt(2)


class ResidualTrunk(nn.Module):
    """from-RGB, residual blocks down to 4x4, [minibatch-stddev,] conv, dense, dense -> out_dim."""

    def __init__(self, cfg: DiscriminatorConfig, out_dim: int, mbstd: bool):
        super().__init__()
        self.config = cfg = cfg.validate()
        resolutions = _resolutions(cfg.resolution)[::-1]  # R, R/2, ..., 4
        self.from_rgb = EqualizedConv2d(cfg.img_channels, cfg.channels_at(cfg.resolution), 1)
        self.blocks = nn.Sequential(*[
            ResidualBlock(cfg.channels_at(res), cfg.channels_at(res // 2)) for res in resolutions[:-1]
        ])  # fmt: skip
        ch4 = cfg.channels_at(4)
        use_mbstd = mbstd and cfg.mbstd_group > 0
        self.mbstd = MinibatchStdDev(cfg.mbstd_group, cfg.mbstd_channels) if use_mbstd else None
        extra = cfg.mbstd_channels if use_mbstd else 0
        fc = cfg.fc_channels or ch4
        self.conv = EqualizedConv2d(ch4 + extra, ch4, 3)
        self.fc = EqualizedLinear(ch4 * 16, fc, activation=True)
        self.out = EqualizedLinear(fc, out_dim)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.from_rgb(img))
        if self.mbstd is not None:
            x = self.mbstd(x)
        return self.out(self.fc(self.conv(x).flatten(1)))


class Discriminator(ResidualTrunk):
    """D(images) -> realness logits (N,)."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__(config, out_dim=1, mbstd=True)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return super().forward(img).squeeze(1)


class Decoder(ResidualTrunk):
    """F(images) -> (z estimate (N, z_dim), c logits (N, c_dim)); bit = logit > 0."""

    def __init__(self, config: DiscriminatorConfig, z_dim: int, c_dim: int):
        super().__init__(config, out_dim=z_dim + c_dim, mbstd=False)
        self.z_dim, self.c_dim = z_dim, c_dim

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = super().forward(img)
        return out[:, : self.z_dim], out[:, self.z_dim :]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
