"""Marking an image in its own mode: the RGB the codec works on, and the result back in the input's mode.

A fingerprinted image is the input plus a faint residual, nothing else: same size, alpha byte for
byte, greyscale still greyscale, 16-bit still 16-bit. The residual is added to the values scaled to
[0, 1] by the mode's white level and rounded back at the input's own precision:

* RGB, RGBA: 8-bit colour; RGBA's alpha is copied unchanged (not composited away).
* L, LA: 8-bit grey; the codec marks the grey replicated to RGB and the mean of the marked channels
  is the new grey. Only the residual's grey part survives that: codec-any's residual is mostly
  colour (bit accuracy 0.52 in grey on a photo crop that reads 0.99 in RGB), so it makes a grey one
  for greyscale images (codec/anysize_refine.py), which its decoder reads only in part (0.73 there;
  tests/test_codec_anysize_cli.py keeps the 0.9 target as an expected failure). I;16 (16-bit grey; I;16B/I;16L come back as I;16, the same values): white 65535.
  I (32-bit integer) and F (float) grey: white 255 or 65535 by the largest value (F within [0, 1]:
  white 1), as `ganprint.data` reads them; larger values are refused. F stays unrounded.
* P: a palette cannot hold a residual, so it comes back as RGB, or RGBA when it has transparency;
  PA as RGBA. A transparent colour of L or RGB becomes an alpha channel (LA, RGBA) for the same reason.
* 1 (bilevel) comes back as L; CMYK, YCbCr, LAB, HSV, RGBX as RGB (PIL's conversions, without
  colour management).

The result carries the original's `info` entries "exif" and "dpi", and its "icc_profile" where the
colour model is unchanged (not from CMYK, YCbCr, LAB, HSV), so PIL's `save` writes them back; the
pixels are taken as given (the EXIF orientation is not applied here: ganprint.image_files does that).

16-bit colour has no PIL mode: PIL reads a 16-bit RGB PNG as 8-bit RGB. `ganprint.image_files` reads
such files' full 16-bit values with OpenCV and marks them as tensors (see there).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .errors import GanprintError

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_GREY = ("1", "L", "LA", "La", "I", "F", *_SIXTEEN_BIT)
_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")
_OTHER_COLOUR_SPACES = ("CMYK", "YCbCr", "LAB", "HSV")  # an ICC profile of these would misdescribe RGB


def white_level(im: Image.Image) -> float:
    """The value of white in `im`'s pixel values: 255 for 8-bit modes, 65535 for I;16, by the data for I and F."""
    if im.mode in _SIXTEEN_BIT:
        return 65535.0
    if im.mode not in ("I", "F"):
        return 255.0
    peak = float(np.nanmax(np.asarray(im), initial=0))
    if im.mode == "F" and peak <= 1.0:
        return 1.0
    if peak <= 255:
        return 255.0
    if peak <= 65535:
        return 65535.0
    raise GanprintError(f"{im.mode} image with values up to {peak:g}: beyond 16 bits; convert it to 16 bits first")


def stays_grey(im: Image.Image) -> bool:
    """Whether `im` comes back greyscale (marked_like keeps only the grey part of a residual)."""
    return im.mode in _GREY


def storage_levels(im: Image.Image) -> float | None:
    """Steps per unit of the values `marked_like` writes for `im`: 255 (8 bits), 65535 (16), None for F."""
    if im.mode == "F":
        return None
    return white_level(im) if im.mode in _GREY else 255.0


def _alpha(im: Image.Image) -> Image.Image | None:
    """The alpha channel the output keeps: the input's, or one made from a transparent colour."""
    if im.mode in _ALPHA:  # the last band ("A", or "a" when the colour is premultiplied)
        return im.getchannel(len(im.getbands()) - 1)
    if "transparency" in im.info and im.mode in ("P", "L", "RGB"):
        return im.convert("LA" if im.mode == "L" else "RGBA").getchannel("A")
    return None


def rgb_for_marking(im: Image.Image) -> torch.Tensor:
    """(3,H,W) float32 in [0,1]: the colour the residual is added to (alpha is not composited away)."""
    if im.mode in _GREY:
        if im.mode == "La":
            im = im.convert("LA")  # un-premultiplied grey
        if im.mode in ("1", "LA"):
            im = im.convert("L")
        grey = np.asarray(im, dtype=np.float32) / np.float32(white_level(im))
        g = torch.from_numpy(np.clip(np.nan_to_num(grey), 0, 1))
        return g.unsqueeze(0).expand(3, -1, -1).contiguous()
    if im.mode in ("P", "PA", "RGBa"):
        im = im.convert("RGBA")
    rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255)
    # channels stay interleaved in memory (torch's channels_last): no copy here, and marked_like's
    # way back to pixels is a plain read (docs/codec-design.md, "Embedding without two copies")
    return torch.from_numpy(rgb).permute(2, 0, 1)


def marked_like(original: Image.Image, marked: torch.Tensor) -> Image.Image:
    """The marked (3,H,W) float RGB in [0,1] back in `original`'s mode, at its precision, its alpha copied
    unchanged (the mode table in the module docstring)."""
    if tuple(marked.shape) != (3, original.height, original.width):
        raise GanprintError(
            f"marked image is {tuple(marked.shape)}, the original {original.width}x{original.height} ({original.mode})"
        )
    alpha = _alpha(original)
    a = marked.detach().float().clamp(0, 1).cpu().numpy()
    if original.mode in _GREY:
        white = white_level(original)
        grey = a.mean(axis=0) * white
        if original.mode == "F":
            return Image.fromarray(grey.astype(np.float32))
        if original.mode == "I":
            return Image.fromarray(np.round(grey).astype(np.int32))
        if original.mode in _SIXTEEN_BIT:
            return Image.fromarray(np.round(grey).astype(np.uint16))
        out = Image.fromarray(np.round(grey).astype(np.uint8))
    else:
        out = Image.fromarray(np.round(a.transpose(1, 2, 0) * 255).astype(np.uint8))
    if alpha is not None:
        out.putalpha(alpha)
    keep = ("exif", "dpi") if original.mode in _OTHER_COLOUR_SPACES else ("exif", "dpi", "icc_profile")
    out.info.update({k: original.info[k] for k in keep if k in original.info})
    return out


def rgb16_for_marking(pixels: np.ndarray) -> torch.Tensor:
    """(3,H,W) float32 in [0,1] from 16-bit colour pixels (H, W, 3|4) uint16 (ganprint.image_files)."""
    return torch.from_numpy(pixels[..., :3].astype(np.float32) / np.float32(65535)).permute(2, 0, 1).contiguous()


def marked_like_rgb16(pixels: np.ndarray, marked: torch.Tensor) -> np.ndarray:
    """The marked (3,H,W) float RGB as 16-bit pixels like `pixels`, whose alpha (if any) is copied unchanged."""
    rgb = np.round(marked.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0) * 65535).astype(np.uint16)
    if rgb.shape[:2] != pixels.shape[:2]:
        raise GanprintError(f"marked image is {rgb.shape[:2]}, the original {pixels.shape[:2]}")
    return np.concatenate([rgb, pixels[..., 3:]], axis=-1) if pixels.shape[2] == 4 else rgb
