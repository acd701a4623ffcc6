"""Whether an image carries enough signal for a verdict, measured on the image as the decoder sees it.

A decoder reads a flat image (one colour, or almost no texture) as some fixed bits with no randomness
behind them, so a p-value computed from them means nothing; such images get the answer "not enough
signal to decide" instead of a verdict. The criterion: the image's *texture*, the RMS of its high-pass
(each RGB channel minus its 3x3 box blur, edges replicated) in 8-bit grey levels at the decoder's
working resolution, below `MIN_TEXTURE`. A photo has several levels of it (the 64 built-in sample
crops: 0.7 and up at 32 px), a fingerprinted image at least the codec's residual (3 and up on flat
colours for the shipped codecs); a flat colour has 0 and a smooth 8-bit gradient about 0.25-0.6.

An image of at most `PALETTE_COLOURS` distinct colours (a palette PNG or GIF, a graphic) is
palette-quantized: its dithering noise lies outside the clean photos a calibration was measured on,
and can make a decoder confident (web-palette dithering at 32 px: 49 of the 64 sample crops above
codec-32's clean threshold; at 40 px, 14). Its bits are still tested against registered
fingerprints, but its confidence does not make it "fingerprinted-unknown" (ganprint.attribution).
Resizing mixes a palette's colours, so the test is made on the image as read from its file
(`is_palette_image`) where the file is at hand, and on the decoder's input otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

MIN_TEXTURE = 0.2  # 8-bit grey levels of high-pass RMS; below it: not enough signal to decide
PALETTE_COLOURS = 256  # at most this many distinct colours: palette-quantized
NOT_ENOUGH_SIGNAL = "not enough signal to decide"


def texture(images: torch.Tensor) -> torch.Tensor:
    """(N,) high-pass RMS in 8-bit levels of images (N, 3, H, W) in [0, 1]."""
    x = images.detach().float().cpu() * 255
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return (x - blurred).pow(2).mean(dim=(1, 2, 3)).sqrt()


def distinct_colours(images: torch.Tensor) -> torch.Tensor:
    """(N,) number of distinct 8-bit RGB colours of images (N, 3, H, W) in [0, 1]."""
    q = (images.detach().float().cpu().clamp(0, 1) * 255).round().long()
    codes = (q[:, 0] * 65536 + q[:, 1] * 256 + q[:, 2]).flatten(1).sort(dim=1).values
    return (codes[:, 1:] != codes[:, :-1]).sum(dim=1) + 1  # a new colour at every change of the sorted codes


def is_palette_image(image: Image.Image) -> bool:
    """Whether an image, as read from its file (before resizing), has at most PALETTE_COLOURS colours."""
    return image.getcolors(PALETTE_COLOURS) is not None


@dataclass
class ImageSignal:
    """Per image: its texture and distinct colours, and what follows from them."""

    texture: torch.Tensor  # (N,) 8-bit levels
    colours: torch.Tensor  # (N,)

    @classmethod
    def measure(cls, images: torch.Tensor) -> "ImageSignal":
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        return cls(texture(images), distinct_colours(images))

    def __len__(self) -> int:
        return int(self.texture.shape[0])

    @property
    def enough(self) -> list[bool]:
        """Whether each image has enough texture for a verdict."""
        return (self.texture >= MIN_TEXTURE).tolist()

    @property
    def palette(self) -> list[bool]:
        """Whether each image is palette-quantized (its confidence is not evidence of a fingerprint)."""
        return (self.colours <= PALETTE_COLOURS).tolist()

    def reason(self, i: int) -> str:
        """Why image i gets no verdict (for images without enough signal)."""
        return f"{NOT_ENOUGH_SIGNAL}: texture {float(self.texture[i]):.2f} < {MIN_TEXTURE:g} grey levels (flat image)"
