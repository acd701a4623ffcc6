"""The any-size codec: fingerprints photos and generated images at their native size and aspect ratio.

    codec = load_codec("codec-any")
    marked = codec.embed(pil_image, fingerprint)        # a PIL image of the same size and mode
    result = codec.detect([marked], expected=fingerprint)

How one network serves every size (docs/codec-design.md, "Any size"):
- Working resolution. The image is resized (antialiased) to W x W (W = 128), whatever its size and
  aspect ratio; the encoder predicts a residual there, and the residual, not the image, is resized back
  to the native size and added. The image keeps every native pixel; only a smooth W x W pattern is
  added, whose period at native size grows with the image (JPEG's 8x8 blocks and a resize barely
  touch it on a large photo).
- A tiled message. The bits enter as a `tile` x `tile` pattern (at working resolution) repeated over
  the image, so every tile carries all the bits: a crop keeps whole tiles.
- Folding decoder. The decoder's stride-8 features are averaged over every tile ("folded" into one
  tile's worth of positions, `tile / 8` per side) and read out linearly. A crop shifts the tile grid
  (a cyclic shift of the folded map) and magnifies it (a scale change): the decoder tries every
  cyclic shift and a few working sizes (`scales`) and keeps the reading with the largest mean |logit|.
  The choice does not look at any expected fingerprint, so on an unmarked image the bits it keeps are
  still fair coins and the binomial p-value stays valid.
- A texture mask. The residual is spread by local contrast (never below `mask_floor` of the mean
  amplitude), so flat skies and gradients carry less of it; its RMS per image stays `residual_rms`,
  except in an image with little texture anywhere (`flat_texture`), which gets less energy: there the
  mask has nowhere to hide the residual, and the decoder needs less of it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanprintError

KIND = "ganprint.codec-anysize"
DECODER_STRIDE = 8
ENCODER_STRIDE = 4


ARCHITECTURES = ("unet", "conv")


@dataclass
class AnySizeConfig:
    arch: str = "unet"  # "unet": residual made at W/2 (TiledEncoder); "conv": codec-32's layers run over tiles
    fingerprint_length: int = 100  # bits per fingerprint
    working_resolution: int = 128  # W: images are read and the residual is made at W x W
    tile: int = 32  # period of the message pattern at working resolution (a multiple of 8)
    channels: int = 48  # width of the networks
    message_channels: int = 16  # channels of the tiled message map
    residual_rms: float = 0.0065  # RMS of the added residual in [0,1] units: PSNR ~ -20 log10(rms)
    mask_floor: float = 0.35  # share of the mean residual amplitude that flat regions keep
    scales: tuple[float, ...] = (1.0, 0.84, 0.71, 0.59, 0.5)  # working sizes tried by the decoder (x W)
    # the search's yardstick: mean and std of the readings' confidence (mean |logit|) per scale on clean
    # images (measured at the end of training); a reading is judged by how far above that it stands
    search_null: tuple[tuple[float, float], ...] | None = None
    canonical_bonus: float = 2.0  # the uncropped reading (scale 1, no shift) wins unless beaten by this (in stds)
    # an uncropped reading this far out (in stds, bonus included) ends the search: the crop views are not
    # read (clean images score ~2, crops' uncropped readings <= 6, fingerprinted uncropped ones 45-135)
    confident_score: float | None = 12.0
    # flat images (smooth gradients, skies, flat artwork) show a residual that texture would hide, and
    # need less of it to be read: below this texture (`image_texture`) the residual's energy shrinks in
    # proportion, to no less than `flat_energy_floor` of it (None: every image gets residual_rms)
    flat_texture: float | None = None
    flat_energy_floor: float = 0.35
    min_side: int = 64  # smallest image side accepted (px)
    max_side: int = 8192  # largest image side accepted (px)
    extra: dict = field(default_factory=dict)  # free notes (training recipe), not used by the networks

    @property
    def resolution(self) -> int:  # what fixed-size code paths print; this codec takes any size
        return self.working_resolution

    def validate(self) -> "AnySizeConfig":
        if self.arch not in ARCHITECTURES:
            raise GanprintError(f"unknown any-size architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if self.arch == "conv" and self.tile != 32:
            raise GanprintError("the conv architecture reads 32 px tiles (tile must be 32)")
        w, t = self.working_resolution, self.tile
        if not isinstance(w, int) or w < 64 or w % DECODER_STRIDE:
            raise GanprintError(f"working_resolution must be a multiple of 8 >= 64, got {w}")
        if not isinstance(t, int) or t % DECODER_STRIDE or w % t or t < DECODER_STRIDE:
            raise GanprintError(f"tile must be a multiple of 8 that divides working_resolution, got {t}")
        if not isinstance(self.fingerprint_length, int) or not 1 <= self.fingerprint_length <= 4096:
            raise GanprintError(f"fingerprint length must be between 1 and 4096, got {self.fingerprint_length}")
        if not 0 < self.residual_rms < 1:
            raise GanprintError(f"residual_rms must be in (0, 1), got {self.residual_rms}")
        if not 0 <= self.mask_floor <= 1:
            raise GanprintError(f"mask_floor must be in [0, 1], got {self.mask_floor}")
        if not self.scales or self.scales[0] != 1 or not all(0.2 <= s <= 1.5 for s in self.scales):
            raise GanprintError(f"scales must be numbers in [0.2, 1.5], the first 1 (uncropped), got {self.scales}")
        if self.search_null is not None and (
            len(self.search_null) != len(self.scales) or not all(d > 0 for _, d in self.search_null)
        ):
            raise GanprintError("search_null must hold a (mean, std > 0) pair per scale")
        if self.confident_score is not None and not self.confident_score > 0:
            raise GanprintError(f"confident_score must be positive or None, got {self.confident_score}")
        if self.flat_texture is not None and not self.flat_texture > 0:
            raise GanprintError(f"flat_texture must be positive or None, got {self.flat_texture}")
        if not 0 < self.flat_energy_floor <= 1:
            raise GanprintError(f"flat_energy_floor must be in (0, 1], got {self.flat_energy_floor}")
        if not 16 <= self.min_side <= self.max_side:
            raise GanprintError(f"need 16 <= min_side <= max_side, got {self.min_side}, {self.max_side}")
        return self

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["scales"] = list(self.scales)
        data["search_null"] = None if self.search_null is None else [list(v) for v in self.search_null]
        return {"kind": KIND, **data}

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "AnySizeConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"kind"})
        if unknown:
            raise GanprintError(f"{source}: unknown any-size codec config fields {unknown}")
        values = {k: v for k, v in data.items() if k in names}
        if "scales" in values:
            values["scales"] = tuple(float(s) for s in values["scales"])
        if values.get("search_null") is not None:
            values["search_null"] = tuple((float(m), float(d)) for m, d in values["search_null"])
        try:
            return cls(**values).validate()
        except TypeError as exc:
            raise GanprintError(f"{source}: bad any-size codec config ({exc})") from None


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.SiLU())


def local_contrast(images: torch.Tensor) -> torch.Tensor:
    """(N,1,H,W): the standard deviation of luminance in each 5x5 neighbourhood, smoothed over 5x5."""
    lum = images.mean(dim=1, keepdim=True)
    mean = F.avg_pool2d(lum, 5, stride=1, padding=2, count_include_pad=False)
    var = F.avg_pool2d(lum * lum, 5, stride=1, padding=2, count_include_pad=False) - mean * mean
    return F.avg_pool2d(var.clamp_min(0).sqrt(), 5, stride=1, padding=2, count_include_pad=False)


def image_texture(images: torch.Tensor) -> torch.Tensor:
    """(N,): an image's mean local contrast at working resolution. Smooth gradients score 0.001-0.005,
    photos 0.007-0.07 (the training photos' 30th percentile: 0.02)."""
    return local_contrast(images).mean(dim=(1, 2, 3))


def texture_mask(images: torch.Tensor, floor: float) -> torch.Tensor:
    """(N,1,H,W) weights with mean 1 per image: local luminance contrast, at least `floor` of the mean.

    The residual is multiplied by it, so it goes where texture hides it (videoseal #57: ripples seen in
    flat regions without such a mask)."""
    local = local_contrast(images)
    local = local / (local.mean(dim=(2, 3), keepdim=True) + 1e-4)
    mask = floor + (1 - floor) * local
    return mask / mask.mean(dim=(2, 3), keepdim=True)


class TiledEncoder(nn.Module):
    """r = E(x_W, bits): a small U-Net at half and quarter working resolution, the bits entering as a
    tiled map at the bottom. The residual is made at W/2 and resized: a smooth pattern that JPEG and
    resizing leave alone, and no full-resolution convolution to pay for."""

    def __init__(self, config: AnySizeConfig):
        super().__init__()
        c, cm = config.channels, config.message_channels
        self.config = config
        self.tile_cells = config.tile // ENCODER_STRIDE
        self.message = nn.Linear(config.fingerprint_length, cm * self.tile_cells**2)
        self.down1 = nn.Sequential(_conv(3, c // 2, 2), _conv(c // 2, c // 2))  # W/2
        self.down2 = _conv(c // 2, c, 2)  # W/4
        self.mid = nn.Sequential(_conv(c + cm, 3 * c // 2), _conv(3 * c // 2, 3 * c // 2), _conv(3 * c // 2, c))
        self.up = nn.Sequential(_conv(c + c // 2, c // 2), nn.Conv2d(c // 2, 3, 1))  # W/2

    def message_map(self, bits: torch.Tensor, height: int, width: int) -> torch.Tensor:
        t = self.tile_cells
        m = self.message(2 * bits - 1).view(bits.shape[0], -1, t, t)
        return m.repeat(1, 1, math.ceil(height / t), math.ceil(width / t))[:, :, :height, :width]

    def forward(self, images: torch.Tensor, bits: torch.Tensor, rms: float | None = None) -> torch.Tensor:
        """The residual at working resolution, with RMS `rms` (default: the config's) per image."""
        s1 = self.down1(2 * images - 1)
        s2 = self.down2(s1)
        h = self.mid(torch.cat([s2, self.message_map(bits, *s2.shape[-2:])], dim=1))
        r = self.up(torch.cat([F.interpolate(h, size=s1.shape[-2:], mode="bilinear", align_corners=False), s1], 1))
        r = F.interpolate(r, size=images.shape[-2:], mode="bilinear", align_corners=False)
        r = r * texture_mask(images, self.config.mask_floor)
        rms = self.config.residual_rms if rms is None else rms
        return rms * r / (r.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-8)


class ConvTiledEncoder(nn.Module):
    """r = E(x_W, bits) with the layers of a 32-px ganprint codec (codec/networks.py ResidualEncoder),
    run over the whole working image with the message map repeated every 32 px: a codec-32-like
    encoder becomes an any-size one, and can start from codec-32's weights (same parameter names)."""

    def __init__(self, config: AnySizeConfig):
        super().__init__()
        c, cm = config.channels, config.message_channels
        self.config = config
        self.message_size = config.tile // 2
        self.message = nn.Linear(config.fingerprint_length, cm * self.message_size**2)
        self.body = nn.Sequential(
            nn.Conv2d(3 + cm, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, 3, 1),
        )  # fmt: skip

    def forward(self, images: torch.Tensor, bits: torch.Tensor, rms: float | None = None) -> torch.Tensor:
        n, _, h, w = images.shape
        t = self.config.tile
        m = self.message(2 * bits - 1).view(n, -1, self.message_size, self.message_size)
        m = F.interpolate(m, size=(t, t), mode="nearest")
        m = m.repeat(1, 1, math.ceil(h / t), math.ceil(w / t))[:, :, :h, :w]
        r = self.body(torch.cat([2 * images - 1, m], dim=1))
        r = r * texture_mask(images, self.config.mask_floor)
        rms = self.config.residual_rms if rms is None else rms
        return rms * r / (r.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-8)


def build_encoder(config: AnySizeConfig) -> nn.Module:
    return ConvTiledEncoder(config) if config.arch == "conv" else TiledEncoder(config)


class FoldingDecoder(nn.Module):
    """Bit logits from an image at (about) working resolution, for each cyclic shift of the tile grid."""

    def __init__(self, config: AnySizeConfig):
        super().__init__()
        c = config.channels
        self.cells = config.tile // DECODER_STRIDE
        if config.arch == "conv":  # a 32-px ganprint codec's ConvDecoder body (same parameter names)
            self.body = nn.Sequential(
                nn.Conv2d(3, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, c, 3, stride=2, padding=1), nn.SiLU(),
                nn.Conv2d(c, 2 * c, 3, padding=1), nn.SiLU(), nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1),
                nn.SiLU(), nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.SiLU(),
            )  # fmt: skip
        else:
            self.body = nn.Sequential(
                _conv(3, c, 2), _conv(c, c), _conv(c, 2 * c, 2), _conv(2 * c, 2 * c), _conv(2 * c, 2 * c, 2),
            )  # fmt: skip
        self.readout = nn.Linear(2 * c * self.cells**2, config.fingerprint_length)

    def fold(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, p, p): stride-8 features averaged over all positions of the same tile phase."""
        f = self.body(2 * images - 1)
        p = self.cells
        h, w = f.shape[-2:]
        ay = F.one_hot(torch.arange(h, device=f.device) % p, p).to(f.dtype)
        ax = F.one_hot(torch.arange(w, device=f.device) % p, p).to(f.dtype)
        ay, ax = ay / ay.sum(0).clamp_min(1), ax / ax.sum(0).clamp_min(1)
        return torch.einsum("nchw,hu,wv->ncuv", f, ay, ax)

    def moved_features(self, images: torch.Tensor, unit: int = 2) -> torch.Tensor:
        """The body's features at every `unit` px move of the image in one pass: (N, C, h, w) where
        [..., m / unit + (8 / unit) * k, :] is row k of `body(images[..., m:, :])` (same for columns).

        Moving a view by a multiple of `unit` px moves the stride-8 grid by a whole number of `unit`-px
        steps, so the strided convolutions after the first `unit` px of stride run at stride 1 (dilated
        by the stride they skip) and every move reads off the same map: a fraction of the cost of one
        pass per move. Exact except within the receptive field (about 20 px) of the top and left edges,
        where a moved view sees zero padding and this map sees the pixels above and left of the move."""
        x, stride, spacing = 2 * images - 1, 1, 1  # stride of the view's grid, px between this map's samples
        for layer in self.layers():
            if not isinstance(layer, nn.Conv2d):
                x = layer(x)
                continue
            if layer.kernel_size != (3, 3) or layer.padding != (1, 1) or layer.dilation != (1, 1):
                raise GanprintError("moved_features reads 3x3 convolutions with padding 1 only")
            step = stride // spacing  # the view's neighbours are this many samples apart here
            stride *= layer.stride[0]
            out_spacing = min(stride, unit)
            x = F.conv2d(x, layer.weight, layer.bias, stride=out_spacing // spacing, padding=step, dilation=step)
            spacing = out_spacing
        if stride % unit:
            raise GanprintError(f"moves of {unit} px do not divide the decoder's stride {stride}")
        return x

    def layers(self) -> list[nn.Module]:
        """The body's layers in order (convolutions and activations, out of their Sequentials)."""
        return [m for m in self.body.modules() if not list(m.children())]

    def cells_along(self, size: int) -> int:
        """How many stride-8 feature positions the body makes along a side of `size` px."""
        for layer in self.layers():
            if isinstance(layer, nn.Conv2d):
                size = (size + 2 * layer.padding[0] - layer.kernel_size[0]) // layer.stride[0] + 1
        return size

    def fold_moved(self, images: torch.Tensor, moves: Sequence[int]) -> torch.Tensor:
        """(N, len(moves)**2, C, p, p): `fold(images[..., dy:, dx:])` for every (dy, dx) in moves x moves
        (dy-major), from one `moved_features` pass (equal but for the top and left edges, see there)."""
        unit = math.gcd(*moves, DECODER_STRIDE)
        f = self.moved_features(images, unit)
        every = DECODER_STRIDE // unit
        p = self.cells

        def phases(size: int, length: int) -> torch.Tensor:  # (moves, length, p): the averaging weights
            out = torch.zeros(len(moves), length, p, dtype=f.dtype, device=f.device)
            for i, m in enumerate(moves):
                k = torch.arange(self.cells_along(size - m), device=f.device)
                out[i, m // unit + every * k, k % p] = 1.0
            return out / out.sum(1, keepdim=True).clamp_min(1)

        ay, ax = phases(images.shape[-2], f.shape[-2]), phases(images.shape[-1], f.shape[-1])
        folded = torch.einsum("nchw,ahu,bwv->nabcuv", f, ay, ax)
        return folded.flatten(1, 2)

    def read(self, folded: torch.Tensor, shift_y: torch.Tensor, shift_x: torch.Tensor) -> torch.Tensor:
        """Logits (N, L) with the tile grid shifted by (shift_y, shift_x) cells, one shift per image."""
        p = self.cells
        idx = torch.arange(p, device=folded.device)
        rows = (idx.view(1, p) - shift_y.view(-1, 1)) % p  # out[u] = in[u - s]
        cols = (idx.view(1, p) - shift_x.view(-1, 1)) % p
        n, c = folded.shape[:2]
        g = folded.gather(2, rows.view(n, 1, p, 1).expand(n, c, p, p))
        g = g.gather(3, cols.view(n, 1, 1, p).expand(n, c, p, p))
        return self.readout(g.flatten(1))

    def read_all_shifts(self, folded: torch.Tensor) -> torch.Tensor:
        """Logits (N, p*p, L) for every cyclic shift."""
        p = self.cells
        u = torch.arange(p, device=folded.device)
        s = u.view(p, 1, 1)  # out[u] = in[(u - s) % p], as torch.roll by s: one gather for every shift
        rows = ((u.view(1, p, 1) - s) % p * p).view(p, 1, p, 1)
        cols = ((u.view(1, 1, p) - s) % p).view(1, p, 1, p)
        index = (rows + cols).flatten()  # (shift_y, shift_x, u, v) -> flat source position
        n, c = folded.shape[:2]
        shifted = folded.flatten(2)[:, :, index].view(n, c, p * p, p * p).transpose(1, 2)
        return self.readout(shifted.flatten(2))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, L) of the shift with the largest mean |logit| (images already at a working size)."""
        logits = self.read_all_shifts(self.fold(images))
        best = logits.abs().mean(-1).argmax(1)
        return logits[torch.arange(logits.shape[0]), best]


def check_image_size(height: int, width: int, config: AnySizeConfig, name: str = "image") -> None:
    if min(height, width) < config.min_side:
        raise GanprintError(
            f"{name}: {width}x{height} is too small for this codec (shorter side at least {config.min_side} px)"
        )
    if max(height, width) > config.max_side:
        raise GanprintError(
            f"{name}: {width}x{height} is too large for this codec (longer side at most {config.max_side} px); "
            "resize it first"
        )


def to_working(images: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased resize of (N,3,H,W) to size x size (aspect ratio not kept: the residual comes back
    through the inverse resize, and reading squashes the same way)."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def to_native(residual: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if residual.shape[-2:] == (height, width):
        return residual
    return F.interpolate(residual, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
