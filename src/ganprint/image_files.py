"""Image files as users keep them: read one with what it takes to write it back, and write the
fingerprinted image with that carried over.

`read_image_file` decodes a file with `ganprint.data`'s checks (BadImageError on anything wrong) and
keeps, beside the pixels in their own mode (ganprint.image_modes):

* EXIF: the orientation is applied to the pixels and the Orientation tag then set to 1 (also in XMP,
  where PIL removes it); every other tag is kept;
* the ICC profile, PNG text chunks (tEXt, zTXt, iTXt: written back as iTXt when they were), DPI and
  a JPEG comment;
* 16-bit colour PNGs, which PIL would read at 8 bits: their 16-bit values are read with OpenCV and
  kept in `ImageFile.deep` (H, W, 3|4) uint16.

`write_image_file` writes atomically (ganprint.io) in one of `OUTPUT_FORMATS`:

* png (default): every mode the marking produces, 16 bits where the input had them; all metadata.
* jpeg at `quality`, chroma subsampling `JPEG_SUBSAMPLING`: EXIF, ICC, DPI, comment (JPEG has no text
  chunks); 16-bit values are rounded to 8 bits; images with alpha are refused (JPEG cannot hold it).
* webp, lossy at `quality` with lossless alpha (kept byte for byte): EXIF, ICC; greyscale is stored as
  RGB (WebP has no grey mode), 16-bit values as 8 bits.

An ICC profile is carried over only when its colour space is the output's (an RGB profile on RGB, a
grey one on grey): a CMYK photo comes back as RGB, and its CMYK profile would misdescribe it.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, PngImagePlugin

from .data import ImageSource, open_image
from .errors import BadImageError
from .image_modes import white_level
from .io import atomic_path

OUTPUT_FORMATS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
DEFAULT_QUALITY = 90
# Chroma subsampling of JPEG output: 4:4:4 keeps the colour residual at full resolution (PIL's
# default, 4:2:0, halves it in both directions). benchmarks/bench_jpeg_subsampling.py with an early
# codec-any snapshot (step 300), 4 held-out photos: bit accuracy 0.990 vs 0.985 at quality 90, 0.9925
# vs 0.980 at 75, for files 1.25-1.29x larger; re-measure with the shipped model.
JPEG_SUBSAMPLING = "4:4:4"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# EXIF orientation -> the PIL transpose that makes the image upright (as ImageOps.exif_transpose)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_GREY_OUTPUT = ("L", "LA", "I;16")


@dataclass
class ImageFile:
    """One image file's pixels (upright, in their own mode) and the metadata to write back."""

    image: Image.Image
    exif: bytes | None = None  # Orientation set to 1, the other tags as in the file
    icc_profile: bytes | None = None
    text: dict[str, str] = field(default_factory=dict)  # PNG text chunks (PngImagePlugin.iTXt values stay iTXt)
    dpi: tuple[float, float] | None = None
    comment: bytes | None = None  # JPEG COM segment
    deep: np.ndarray | None = None  # 16-bit colour PNG: (H, W, 3|4) uint16 RGB(A), upright

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def _is_deep_colour_png(head: bytes) -> bool:
    """Whether PNG bytes start with an IHDR of 16-bit RGB or RGBA (colour types 2 and 6)."""
    return head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and len(head) >= 26 and head[24] == 16 and head[25] in (2, 6)


def _read_deep(data: bytes, label: str) -> np.ndarray:
    import cv2

    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None or a.dtype != np.uint16 or a.ndim != 3 or a.shape[2] not in (3, 4):
        raise BadImageError(f"{label}: cannot read its 16-bit colour values")
    return np.ascontiguousarray(a[..., [2, 1, 0, 3][: a.shape[2]]])  # BGR(A) -> RGB(A)


def _upright_array(a: np.ndarray, method: Image.Transpose | None) -> np.ndarray:
    """The same transpose as PIL's on each channel of an (H, W, C) array."""
    if method is None:
        return a
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(a[..., c])).transpose(method))
                     for c in range(a.shape[2])], axis=-1)  # fmt: skip


def read_image_file(path_or_bytes: str | os.PathLike | bytes, name: str | None = None) -> ImageFile:
    """Decode one file with its metadata (see the module docstring). Raises BadImageError."""
    is_bytes = isinstance(path_or_bytes, (bytes, bytearray, memoryview))
    label = name or ("image" if is_bytes else os.fspath(path_or_bytes))
    stored = open_image(path_or_bytes, name=label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's advisory warnings on odd EXIF
            exif = stored.getexif()
            orientation = exif.get(ExifTags.Base.Orientation, 1)
            upright = ImageOps.exif_transpose(stored)
            if ExifTags.Base.Orientation in exif:
                exif[ExifTags.Base.Orientation] = 1
            exif_bytes = exif.tobytes() if len(exif) else None
    except Exception as e:  # a corrupt EXIF block
        raise BadImageError(f"{label}: unreadable EXIF data ({type(e).__name__})") from None
    # text chunks as stored, values from the upright image (exif_transpose edits XMP's orientation)
    text = {}
    for key, value in getattr(stored, "text", {}).items():
        new = upright.info.get(key, value)
        if isinstance(value, PngImagePlugin.iTXt) and not isinstance(new, PngImagePlugin.iTXt):
            new = PngImagePlugin.iTXt(new, value.lang, value.tkey)
        text[key] = new
    dpi = upright.info.get("dpi")
    out = ImageFile(
        image=upright,
        exif=exif_bytes,
        icc_profile=upright.info.get("icc_profile") or None,
        text=text,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi else None,
        comment=upright.info.get("comment") or None,
    )
    if stored.format == "PNG" and stored.mode in ("RGB", "RGBA"):
        data = bytes(path_or_bytes) if is_bytes else None
        if data is None:
            with open(path_or_bytes, "rb") as f:
                head = f.read(26)
            if _is_deep_colour_png(head):
                data = Path(path_or_bytes).read_bytes()
        if data is not None and _is_deep_colour_png(data[:26]):
            out.deep = _upright_array(_read_deep(data, label), _UPRIGHT.get(orientation))
    return out


def read_source_image(source: ImageSource, i: int) -> ImageFile:
    """Image i of a source as an ImageFile; sources without files (idx arrays) give bare RGB pixels."""
    f = source.file(i)
    if f is None:
        return ImageFile(image=source.image(i))
    return read_image_file(f, name=source.location(i))


# ----------------------------------------------------------------------------------------- writing


def _icc_space(profile: bytes) -> bytes:
    return profile[16:20] if len(profile) >= 20 else b""


def _storable(image: Image.Image, fmt: str, original_white: float, label: str) -> Image.Image:
    """`image` in a mode the format stores (PNG keeps 16 bits; JPEG and WebP are 8-bit)."""
    if image.mode in ("I", "F"):  # no format here holds 32-bit grey: 8 bits when the data was 8-bit, else 16
        white, dtype = (255.0, np.uint8) if original_white == 255 else (65535.0, np.uint16)
        a = np.asarray(image, dtype=np.float64) * (white / original_white)
        image = Image.fromarray(np.clip(np.round(a), 0, white).astype(dtype))
    if fmt == "png":
        return image
    if image.mode == "I;16":
        image = Image.fromarray(np.round(np.asarray(image, dtype=np.float64) / 257).astype(np.uint8))
    if fmt == "jpeg" and image.mode in ("RGBA", "LA"):
        raise BadImageError(f"{label}: has an alpha channel, which JPEG cannot hold; use --format png or webp")
    if fmt == "webp" and image.mode in ("L", "LA"):
        image = image.convert("RGBA" if image.mode == "LA" else "RGB")
    return image


def _png_info(text: dict[str, str]) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        if isinstance(value, PngImagePlugin.iTXt):
            info.add_itxt(key, value, value.lang or "", value.tkey or "", zip=len(value) > 1024)
        else:
            info.add_text(key, value, zip=len(value) > 1024)  # PIL writes iTXt itself for non-Latin-1 text
    return info


def _save_options(like: ImageFile, fmt: str, mode: str, quality: int) -> dict:
    options: dict = {}
    if like.exif:
        options["exif"] = like.exif
    wanted = b"GRAY" if mode in _GREY_OUTPUT else b"RGB "
    if like.icc_profile and _icc_space(like.icc_profile) == wanted:
        options["icc_profile"] = like.icc_profile
    if fmt == "png":
        if like.dpi:
            options["dpi"] = like.dpi
        if like.text:
            options["pnginfo"] = _png_info(like.text)
    elif fmt == "jpeg":
        options.update(quality=quality, subsampling=JPEG_SUBSAMPLING)
        if like.dpi:
            options["dpi"] = tuple(round(d) for d in like.dpi)
        if like.comment:
            options["comment"] = like.comment
    else:  # webp: lossy colour, lossless alpha (alpha_quality 100), colour kept under transparent pixels
        options.update(quality=quality, alpha_quality=100, exact=True)
    return options


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole chunk bytes) of a PNG file, in order."""
    chunks, pos = [], len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length
        chunks.append((data[pos + 4 : pos + 8], data[pos:end]))
        pos = end
    return chunks


def _deep_png(pixels: np.ndarray, metadata_source: bytes) -> bytes:
    """A 16-bit colour PNG (OpenCV writes the pixels) with the metadata chunks of `metadata_source`, a
    PNG PIL wrote with the same options (so PIL encodes the ICC profile, text, EXIF and DPI chunks)."""
    import cv2

    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels[..., [2, 1, 0, 3][: pixels.shape[2]]]))
    if not ok:
        raise BadImageError("OpenCV could not encode a 16-bit PNG")
    ours = _png_chunks(encoded.tobytes())
    extra = [c for t, c in _png_chunks(metadata_source) if t not in (b"IHDR", b"IDAT", b"IEND")]
    head = [c for t, c in ours if t == b"IHDR"]
    rest = [c for t, c in ours if t in (b"IDAT", b"IEND")]
    return _PNG_SIGNATURE + b"".join(head + extra + rest)


def write_image_file(
    path: str | os.PathLike,
    image: Image.Image | np.ndarray,
    like: ImageFile,
    fmt: str = "png",
    quality: int = DEFAULT_QUALITY,
    label: str | None = None,
) -> None:
    """Write `image` (a PIL image in the mode image_modes.marked_like gives, or a 16-bit colour array
    for files read with `deep` values) atomically as `fmt`, with `like`'s metadata."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; one of {', '.join(OUTPUT_FORMATS)}")
    label = label or os.fspath(path)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint16 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"expected an (H, W, 3|4) uint16 array, got {image.dtype} {image.shape}")
        if fmt == "png":
            mode = "RGBA" if image.shape[2] == 4 else "RGB"
            header = io.BytesIO()
            Image.new(mode, (1, 1)).save(header, "PNG", **_save_options(like, "png", mode, quality))
            data = _deep_png(image, header.getvalue())
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
            return
        image = Image.fromarray(np.round(image / 257.0).astype(np.uint8))  # 8-bit formats
    pil = _storable(image, fmt, white_level(like.image), label)
    options = _save_options(like, fmt, pil.mode, quality)
    with atomic_path(path) as tmp:
        try:
            pil.save(tmp, format=fmt.upper(), **options)
        except ValueError as e:  # PIL's refusals, e.g. an EXIF block too long for a JPEG segment
            raise BadImageError(f"{label}: cannot be written as {fmt.upper()} ({e})") from None
