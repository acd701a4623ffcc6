"""Reading images: sources, decoding to 8-bit RGB, the original preprocessing, batching.

Sources (`open_source(spec)`); a path that exists always wins over the keywords:

* a folder, walked recursively: files ending in one of `IMAGE_EXTENSIONS` (any case), sorted by
  relative POSIX path; names starting with "." (hidden files and folders) are skipped; symlinks
  are followed while they stay inside the folder (each folder at most once, so symlink loops end);
  links that lead outside it are skipped with a warning naming them, unless `follow_links`
  (`--follow-links`, `following_links`);
* a `.zip` file: image members sorted by name; folders, hidden entries and `__MACOSX/` skipped;
* an idx image file (`*-idx3-ubyte`, optionally `.gz`: MNIST / Fashion-MNIST), images named
  `<file name without .gz>-00000.png`;
* `fashion-mnist`, `fashion-mnist:train`, `fashion-mnist:test`: the Debian `dataset-fashion-mnist`
  files (folder overridable with the GANPRINT_FASHION_MNIST_DIR environment variable);
* `samples`: 64 photo crops of 64x64 shipped inside the package (held out from codec training).

Decoding (`load_image`): the file content decides the format (PNG, JPEG, WebP, BMP, GIF, TIFF;
other PIL formats are refused because some of them run external programs). The EXIF orientation
is applied, so a rotated phone photo comes out upright. Conversions to 8-bit RGB:

* 1, L, P, RGB, CMYK, YCbCr, LAB, HSV, RGBX: PIL's `convert("RGB")` (CMYK without colour
  management);
* RGBA, LA, PA, RGBa, La, and P/L/RGB with a transparent colour: composited over WHITE,
  `out = (c * a + 255 * (255 - a) + 127) // 255` per channel, so transparent areas become white
  as in image viewers and on most web pages;
* I;16 (16-bit greyscale, e.g. 16-bit PNG): scaled by the bit depth, `round(v / 257)`, not clipped;
* I (32-bit integer greyscale): values up to 255 are kept, up to 65535 are 16-bit data scaled by
  1/257, larger ones are scaled from the 31-bit range; negative values become 0;
* F (32-bit float greyscale): values within [0, 1] are scaled by 255, otherwise as for I;
* a transparent colour in 16/32-bit greyscale is ignored.

Greyscale results are replicated to three channels. `open_image` decodes with the same checks but
neither converts nor rotates (for ganprint.image_files, which keeps modes and metadata). Any failure
(empty, truncated or corrupt file, not an image, more than `PIL.Image.MAX_IMAGE_PIXELS` pixels,
unsupported mode) raises `BadImageError("<name>: <reason>")` on one line.

Preprocessing (`preprocess`) follows the original tools: the shorter side is resized to R
(bicubic, antialiased) and the centre R x R is cropped; in CelebA mode the centre 148 x 148 (box
15, 35, 163, 183 on aligned 178 x 218 CelebA) is cropped first, then resized to R. An image that is
already R x R is returned untouched, so fingerprinted PNGs are read back bit-exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import io
import os
import re
import stat
import sys
import warnings
import zipfile
import zlib
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from ganprint.errors import BadImageError, GanprintError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

# The PIL formats we let identify a file (camera MPO files open through JPEG).
_DECODERS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_MAX_ZIP_MEMBER = 256 * 1024 * 1024
_CELEBA_CROP = 148
_IDX_MAGIC = b"\x00\x00\x08\x03"
_IDX_NAME = re.compile(r"-idx3-ubyte(\.gz)?$", re.IGNORECASE)
_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_MNIST_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}


# ----------------------------------------------------------------------------- decoding


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _reason(exc: BaseException) -> str:
    """A short human reason for a decoding failure."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"too many pixels (more than {Image.MAX_IMAGE_PIXELS}; possible decompression bomb)"
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognised image file"
    if isinstance(exc, MemoryError):
        return "out of memory while decoding"
    detail = _one_line(str(exc)) or type(exc).__name__
    if "truncated" in detail.lower():
        return "truncated image data"
    return f"corrupt image data ({detail})"


def _scale_high_depth(im: Image.Image) -> Image.Image:
    """16/32-bit integer or float greyscale -> 8-bit L, scaled by the data's bit depth."""
    a = np.nan_to_num(np.asarray(im).astype(np.float64))
    peak = float(a.max()) if a.size else 0.0
    if im.mode.startswith("I;16"):
        scale = 65535.0
    elif im.mode == "F" and peak <= 1.0:
        scale = 1.0
    elif peak <= 255:
        scale = 255.0
    elif peak <= 65535:
        scale = 65535.0
    else:
        scale = float(2**31 - 1)
    out = np.clip(np.rint(np.clip(a, 0, None) * (255.0 / scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(out)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB, by the conversions in the module docstring."""
    if im.mode in _HIGH_DEPTH_MODES:
        return _scale_high_depth(im).convert("RGB")
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        if im.mode == "La":  # PIL cannot convert premultiplied La to RGBA directly
            im = im.convert("LA")
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint32)
        colour, alpha = rgba[..., :3], rgba[..., 3:]
        out = (colour * alpha + 255 * (255 - alpha) + 127) // 255
        return Image.fromarray(out.astype(np.uint8))
    return im.convert("RGB")


def load_image(path_or_bytes: str | os.PathLike | bytes, name: str | None = None) -> Image.Image:
    """Open and fully decode one image as 8-bit RGB (conversions: see the module docstring).

    `name` labels error messages; it defaults to the path. Raises BadImageError on any failure.
    """
    im = open_image(path_or_bytes, name)
    label = name or ("image" if isinstance(path_or_bytes, (bytes, bytearray, memoryview)) else os.fspath(path_or_bytes))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's advisory warnings on odd EXIF
            im = ImageOps.exif_transpose(im)
    except Exception as e:  # a corrupt EXIF block
        raise BadImageError(_one_line(f"{label}: {_reason(e)}")) from None
    try:
        return to_rgb(im)
    except ValueError:  # PIL has no conversion for this mode
        raise BadImageError(_one_line(f"{label}: unsupported image mode {im.mode}")) from None


def open_image(path_or_bytes: str | os.PathLike | bytes, name: str | None = None) -> Image.Image:
    """Open and fully decode one image as stored: its own mode, EXIF orientation not yet applied,
    metadata in `.info` (and `.text` for PNG). The same checks as `load_image` (BadImageError)."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        label = name or "image"
        data = bytes(path_or_bytes)
        if not data:
            raise BadImageError(_one_line(f"{label}: empty file"))
        return _decode(io.BytesIO(data), label)
    label = name or os.fspath(path_or_bytes)
    try:
        st = os.stat(path_or_bytes)
        if stat.S_ISDIR(st.st_mode):
            raise BadImageError(_one_line(f"{label}: is a directory, not an image"))
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            raise BadImageError(_one_line(f"{label}: not a regular file"))
        if st.st_size == 0:
            raise BadImageError(_one_line(f"{label}: empty file"))
        with open(path_or_bytes, "rb") as f:
            return _decode(f, label)
    except FileNotFoundError:
        raise BadImageError(_one_line(f"{label}: no such file")) from None
    except PermissionError:
        raise BadImageError(_one_line(f"{label}: permission denied")) from None
    except IsADirectoryError:
        raise BadImageError(_one_line(f"{label}: is a directory, not an image")) from None
    except OSError as e:  # a symlink loop, an I/O error of the disk, a name too long ...
        raise BadImageError(_one_line(f"{label}: cannot read ({e.strerror or e})")) from None


def _decode(fp, label: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # PIL's advisory warnings (odd EXIF, ...) would be noise per file; the size warning
            # becomes an error so a huge image cannot exhaust memory.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp, formats=_DECODERS) as im:
                im.load()  # decode now, so truncated files fail here and not later
    except Exception as e:  # PIL raises many types; none may leak as a traceback
        raise BadImageError(_one_line(f"{label}: {_reason(e)}")) from None
    return im


# ----------------------------------------------------------------------------- transforms


def _center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    # The same offsets as torchvision's CenterCrop used by the original tools.
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def preprocess(img: Image.Image, resolution: int, celeba: bool = False) -> Image.Image:
    """The original tools' preprocessing to `resolution` x `resolution` (see module docstring).

    In CelebA mode an image smaller than 148 x 148 raises BadImageError (without a file name).
    """
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if img.size == (resolution, resolution):
        return img
    if celeba:
        w, h = img.size
        if min(w, h) < _CELEBA_CROP:
            raise BadImageError(f"image is {w}x{h}, smaller than the 148x148 CelebA crop")
        img = _center_crop(img, _CELEBA_CROP)
        if _CELEBA_CROP == resolution:
            return img
        return img.resize((resolution, resolution), Image.BICUBIC)
    w, h = img.size
    if min(w, h) != resolution:
        # Like torchvision's Resize(int): the long side is truncated, never below `resolution`.
        if w <= h:
            size = (resolution, max(resolution, int(resolution * h / w)))
        else:
            size = (max(resolution, int(resolution * w / h)), resolution)
        img = img.resize(size, Image.BICUBIC)  # PIL's resize antialiases when shrinking
    return _center_crop(img, resolution)


def pil_to_uint8(img: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> uint8 tensor (3, H, W)."""
    if img.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {img.mode}; decode with load_image")
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> float tensor (3, H, W) in [0, 1]."""
    return pil_to_uint8(img).float().div_(255)


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """A tensor (3, H, W) in [0, 1] -> RGB PIL image, clamped and rounded to the nearest level."""
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a tensor of shape (3, H, W), got {tuple(t.shape)}")
    t = torch.nan_to_num(t.detach().cpu().float(), nan=0.0)
    arr = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(arr)


def unique_output_names(relative_names: Sequence[str], suffix: str = ".png") -> list[str]:
    """Flat, distinct output file names for relative input names, in the same order.

    `sub/dir/x.jpg` -> `sub__dir__x.png`. Names that would collide, compared case-insensitively
    because some file systems are, all get their original extension: `a.jpg`, `a.png` ->
    `a-jpg.png`, `a-png.png`; if that is still taken, `-2`, `-3`, ... is added.
    """
    parts = []
    for name in relative_names:
        path = PurePosixPath(name.replace("\\", "/"))
        stem = "__".join([*path.parent.parts, path.stem]) if path.parent.parts else path.stem
        parts.append((stem, path.suffix[1:]))
    counts: dict[str, int] = {}
    for stem, _ in parts:
        key = (stem + suffix).casefold()
        counts[key] = counts.get(key, 0) + 1
    # Names without a collision keep their plain form whatever comes later.
    taken = {key for key, count in counts.items() if count == 1}
    out = []
    for stem, ext in parts:
        plain = stem + suffix
        if counts[plain.casefold()] == 1:
            out.append(plain)
            continue
        base = f"{stem}-{ext}" if ext else stem
        candidate, k = base + suffix, 1
        while candidate.casefold() in taken:
            k += 1
            candidate = f"{base}-{k}{suffix}"
        taken.add(candidate.casefold())
        out.append(candidate)
    return out


# ----------------------------------------------------------------------------- sources


class ImageSource:
    """An ordered, indexable set of images from one place; made by `open_source`.

    `names[i]` is the relative POSIX name of image i, `image(i)` decodes it to RGB (BadImageError
    if it cannot), `location(i)` says where it is for messages. Sources are picklable, so they
    can be used from DataLoader worker processes.
    """

    spec: str
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def location(self, i: int) -> str:
        return f"{self.spec}:{self.names[i]}"

    def image(self, i: int) -> Image.Image:
        raise NotImplementedError

    def file(self, i: int) -> Path | bytes | None:
        """Image i's file, as a path or its bytes, for readers that need more than its RGB pixels
        (ganprint.image_files); None when the source holds pixels rather than files."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, {len(self)} images)"


def _no_images(spec: str) -> GanprintError:
    exts = " ".join(IMAGE_EXTENSIONS)
    return GanprintError(f"{spec}: no images found (looked for {exts}, recursively)")


# Whether folder walks follow symlinks that lead outside the folder given; the CLI's --follow-links
# sets it for one command, library callers may pass `follow_links` to open_source instead.
_FOLLOW_LINKS: ContextVar[bool] = ContextVar("ganprint_follow_links", default=False)


def set_follow_links(follow: bool) -> None:
    """Default for folder walks in this context (the CLI's --follow-links)."""
    _FOLLOW_LINKS.set(bool(follow))


@contextmanager
def following_links(follow: bool = True) -> Iterator[None]:
    token = _FOLLOW_LINKS.set(bool(follow))
    try:
        yield
    finally:
        _FOLLOW_LINKS.reset(token)


class _FolderSource(ImageSource):
    def __init__(self, spec: str, root: Path, follow_links: bool = False):
        self.spec, self.root = spec, root
        self.names, outside = _walk_images(root, follow_links)
        if outside:
            shown = ", ".join(os.path.join(spec, *n.split("/")) for n in outside[:3])
            more = f" and {len(outside) - 3} more" if len(outside) > 3 else ""
            print(f"warning: {spec}: not following {len(outside)} symlink(s) that lead outside the folder: "
                  f"{shown}{more}; pass --follow-links to read them", file=sys.stderr)  # fmt: skip
        if not self.names:
            raise _no_images(spec)

    def location(self, i: int) -> str:
        return os.path.join(self.spec, *self.names[i].split("/"))

    def image(self, i: int) -> Image.Image:
        return load_image(self.file(i), name=self.location(i))

    def file(self, i: int) -> Path:
        return self.root.joinpath(*self.names[i].split("/"))


def _walk_images(root: Path, follow_links: bool = False) -> tuple[list[str], list[str]]:
    """Relative POSIX names of the non-hidden image files below `root`, sorted; and the names of the
    symlinks skipped because they lead outside `root` (none when `follow_links`)."""
    found: list[str] = []
    outside: list[str] = []
    boundary = os.path.realpath(root)
    visited: set[tuple[int, int]] = set()
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in visited:  # a symlink loop or a second link to it
                continue
            visited.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            reason = e.strerror or str(e)
            raise GanprintError(_one_line(f"{folder}: cannot list folder ({reason})")) from None
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if not follow_links and entry.is_symlink() and not _inside(entry.path, boundary):
                if _is_folder(entry) or _is_image_name(entry.name):
                    outside.append(prefix + entry.name)
                continue
            if _is_folder(entry):
                subfolders.append((entry.path, f"{prefix}{entry.name}/"))
            elif _is_image_name(entry.name):
                # Broken links are kept too: they are reported as bad images, not silently lost.
                found.append(prefix + entry.name)
        stack.extend(reversed(subfolders))
    return sorted(found), sorted(outside)


def _inside(path: str, boundary: str) -> bool:
    """Whether `path`, links resolved, is `boundary` or below it (a broken link counts as inside: it
    is reported as a bad image, not silently lost)."""
    real = os.path.realpath(path)
    if not os.path.exists(real):
        return True
    return os.path.commonpath([real, boundary]) == boundary


def _is_folder(entry: os.DirEntry) -> bool:
    """Whether a folder entry is (or links to) a folder; a link that cannot be followed (a loop, no
    permission) is not one, so an image name on it is reported as a bad image like a broken link."""
    try:
        return entry.is_dir()
    except OSError:
        return False


class _ZipSource(ImageSource):
    def __init__(self, spec: str, path: Path):
        self.spec, self.path = spec, path
        self._zip: zipfile.ZipFile | None = None
        self._pid = -1
        try:
            with zipfile.ZipFile(path) as zf:
                members = zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise GanprintError(_one_line(f"{spec}: not a readable zip file ({e})")) from None
        self.names = sorted({m for m in members if _is_zip_image(m)})
        if not self.names:
            raise _no_images(spec)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zip"], state["_pid"] = None, -1
        return state

    def _zipfile(self) -> zipfile.ZipFile:
        # One handle per process: a handle inherited through fork shares its file offset.
        if self._zip is None or self._pid != os.getpid():
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
        return self._zip

    def image(self, i: int) -> Image.Image:
        return load_image(self.file(i), name=self.location(i))

    def file(self, i: int) -> bytes:
        label = self.location(i)
        try:
            zf = self._zipfile()
            info = zf.getinfo(self.names[i])
            if info.file_size > _MAX_ZIP_MEMBER:
                raise BadImageError(
                    f"{label}: too large ({info.file_size} bytes uncompressed, limit 256 MiB)"
                )
            data = zf.read(info)
        except BadImageError:
            raise
        except Exception as e:  # bad CRC, encryption, unsupported compression, vanished file
            message = f"{label}: cannot extract from the zip file ({e})"
            raise BadImageError(_one_line(message)) from None
        return data


def _is_zip_image(member: str) -> bool:
    parts = member.split("/")
    return (
        not member.endswith("/")
        and parts[0] != "__MACOSX"
        and not any(p.startswith(".") for p in parts)
        and _is_image_name(member)
    )


class _IdxSource(ImageSource):
    def __init__(self, spec: str, path: Path):
        self.spec, self.path = spec, path  # the path lets callers find the matching labels file
        self._images = _read_idx_images(path)
        stem = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
        width = len(str(len(self._images)))
        self.names = [f"{stem}-{i:0{width}d}.png" for i in range(len(self._images))]

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(self._images[i]).convert("RGB")


def _read_idx_images(path: Path) -> np.ndarray:
    """The (N, rows, cols) uint8 array of an idx3-ubyte file, validated against its header."""
    gz = path.name.lower().endswith(".gz")
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            header = f.read(16)
            if len(header) < 16:
                raise GanprintError(f"{path}: truncated idx file (no complete header)")
            if header[:4] != _IDX_MAGIC:
                raise GanprintError(
                    f"{path}: not an idx image file "
                    f"(magic 0x{header[:4].hex()}, expected 0x00000803)"
                )
            n, rows, cols = (int.from_bytes(header[k : k + 4], "big") for k in (4, 8, 12))
            if n < 1 or rows < 1 or cols < 1:
                raise GanprintError(f"{path}: idx header gives {n} images of {rows}x{cols}")
            expected = n * rows * cols
            # Read in chunks: a lying header must not make us allocate its claimed size.
            data = bytearray()
            while len(data) <= expected:
                chunk = f.read(min(1 << 24, expected + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
    except GanprintError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        raise GanprintError(_one_line(f"{path}: cannot read idx file ({e})")) from None
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise GanprintError(
            f"{path}: {problem} idx file ({n} images of {rows}x{cols} need {expected} data bytes)"
        )
    return np.frombuffer(bytes(data), dtype=np.uint8).reshape(n, rows, cols)


class _PackageSource(ImageSource):
    """The sample images shipped in the package, found through importlib.resources."""

    def __init__(self) -> None:
        self.spec = "samples"
        try:
            entries = list(_samples_dir().iterdir())
        except (OSError, ModuleNotFoundError):
            entries = []
        self.names = sorted(
            e.name for e in entries if not e.name.startswith(".") and _is_image_name(e.name)
        )
        if not self.names:
            raise GanprintError(
                "samples: the embedded sample images are missing from this installation"
            )

    def image(self, i: int) -> Image.Image:
        return load_image(self.file(i), name=self.location(i))

    def file(self, i: int) -> bytes:
        return _samples_dir().joinpath(self.names[i]).read_bytes()


def _samples_dir() -> Traversable:
    return resources.files("ganprint").joinpath("assets").joinpath("sample_images")


def _fashion_mnist(spec: str) -> ImageSource:
    split = spec.partition(":")[2] or "train"
    override = os.environ.get("GANPRINT_FASHION_MNIST_DIR")
    folder = Path(override or _FASHION_MNIST_DIR)
    stem = _FASHION_MNIST_FILES[split]
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return _IdxSource(spec, candidate)
    hint = " (or fix GANPRINT_FASHION_MNIST_DIR)" if override else ""
    raise GanprintError(
        f"Fashion-MNIST not found at {folder}; "
        f"install it with: sudo apt-get install dataset-fashion-mnist{hint}"
    )


def open_source(spec: str | os.PathLike, follow_links: bool | None = None) -> ImageSource:
    """The ImageSource for a folder, .zip, idx file, `fashion-mnist[:train|:test]` or `samples`.

    `follow_links`: read symlinks of a folder that lead outside it (default: the context's setting,
    normally False; see `following_links`)."""
    text = os.fspath(spec)
    path = Path(text)
    if not os.path.lexists(path):
        if text == "samples":
            return _PackageSource()
        if text in ("fashion-mnist", "fashion-mnist:train", "fashion-mnist:test"):
            return _fashion_mnist(text)
        raise GanprintError(f"{text}: no such file or directory")
    if path.is_dir():
        return _FolderSource(text, path, _FOLLOW_LINKS.get() if follow_links is None else follow_links)
    if not path.exists():
        raise GanprintError(f"{text}: broken symbolic link")
    if path.name.lower().endswith(".zip"):
        return _ZipSource(text, path)
    if _IDX_NAME.search(path.name):
        return _IdxSource(text, path)
    raise GanprintError(
        f"{text}: not a folder, a .zip file or an idx image file (*-idx3-ubyte[.gz]); "
        "to use single images, put them in a folder"
    )


# ----------------------------------------------------------------------------- datasets


def _load_preprocessed(source: ImageSource, i: int, resolution: int, celeba: bool) -> Image.Image:
    img = source.image(i)
    try:
        return preprocess(img, resolution, celeba)
    except BadImageError as e:  # preprocess does not know the file name
        raise BadImageError(f"{source.location(i)}: {e}") from None


class ImageDataset(Dataset):
    """Preprocessed images of a source for inference; pair it with `collate_skip_bad`.

    `dataset[i]` is `(i, tensor (3, R, R) in [0, 1])`, or `(i, message)` with the BadImageError
    message when image i cannot be read, so one bad file never stops a DataLoader.
    """

    def __init__(self, source: ImageSource, resolution: int, celeba: bool = False):
        self.source, self.resolution, self.celeba = source, resolution, celeba

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | str]:
        try:
            img = _load_preprocessed(self.source, i, self.resolution, self.celeba)
        except BadImageError as e:
            return i, str(e)
        return i, pil_to_tensor(img)


def collate_skip_bad(
    batch: list[tuple[int, torch.Tensor | str]],
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, str]]]:
    """Collate ImageDataset items into (indices, images (B, 3, R, R), bad [(index, message)]).

    Bad items are left out of `indices` and `images`; when all are bad, `images` is (0, 3, 0, 0).
    """
    good = [(i, item) for i, item in batch if isinstance(item, torch.Tensor)]
    bad = [(i, item) for i, item in batch if isinstance(item, str)]
    indices = torch.tensor([i for i, _ in good], dtype=torch.long)
    images = torch.stack([t for _, t in good]) if good else torch.empty(0, 3, 0, 0)
    return indices, images, bad


def _warn_skipped(name: str, message: str) -> None:
    print(f"warning: skipped {message}", file=sys.stderr)


def iterate_batches(
    source: ImageSource,
    resolution: int,
    batch_size: int,
    celeba: bool = False,
    strict: bool = False,
    num_workers: int = 0,
    on_bad: Callable[[str, str], None] | None = None,
    order: Sequence[int] | None = None,
) -> Iterator[tuple[list[str], torch.Tensor]]:
    """Yield (names, images (B, 3, R, R) in [0, 1]) in source order (or in `order`, a sequence of
    source indices), a batch at a time.

    A bad image raises its BadImageError if `strict`; otherwise `on_bad(name, message)` is called
    (default: a warning line on stderr) and the image is left out; empty batches are not yielded.
    Raises GanprintError at the end if no image at all could be read.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    report = on_bad or _warn_skipped
    loader = DataLoader(
        ImageDataset(source, resolution, celeba),
        batch_size=batch_size,
        sampler=order,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_skip_bad,
    )
    n_good = 0
    for indices, images, bad in loader:
        for i, message in bad:
            if strict:
                raise BadImageError(message)
            report(source.names[i], message)
        if len(indices):
            n_good += len(indices)
            yield [source.names[i] for i in indices.tolist()], images
    if n_good == 0:
        raise GanprintError(f"{source.spec}: none of the {len(source)} images could be read")


class TrainingImages(Dataset):
    """Preprocessed training tensors (3, R, R) in [0, 1] for the images `indices` of a source.

    With `hflip`, each image is mirrored with probability 1/2 (torch's RNG, which DataLoader seeds
    per worker). A bad image is replaced by the next readable one in `indices`, with one warning
    per bad image and process: training must not stop for one broken file.
    """

    def __init__(
        self,
        source: ImageSource,
        indices: Sequence[int],
        resolution: int,
        celeba: bool = False,
        hflip: bool = False,
    ):
        if len(indices) == 0:
            raise GanprintError(f"{source.spec}: no training images")
        self.source, self.indices = source, list(indices)
        self.resolution, self.celeba, self.hflip = resolution, celeba, hflip
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> torch.Tensor:
        n = len(self.indices)
        for step in range(n):
            i = self.indices[(k + step) % n]
            if i in self._bad:
                continue
            try:
                img = _load_preprocessed(self.source, i, self.resolution, self.celeba)
            except BadImageError as e:
                self._bad.add(i)
                print(f"warning: skipped {e} (using the next image instead)", file=sys.stderr)
                continue
            t = pil_to_tensor(img)
            if self.hflip and torch.rand(()) < 0.5:
                t = t.flip(-1)
            return t
        raise GanprintError(f"{self.source.spec}: none of the {n} training images could be read")


def split_indices(
    n: int, val_fraction: float = 0.05, max_val: int = 512, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Split range(n) into sorted, disjoint (train, validation) index lists, deterministically.

    The validation set has round(n * val_fraction) images (at least 1 when n >= 2 and
    val_fraction > 0, at most `max_val`, always leaving one for training). Images are chosen by a
    hash of (seed, index) rather than a library RNG, so the held-out set stays the same across
    numpy/torch versions and a resumed run never trains on its validation images.
    """
    if n < 1:
        raise GanprintError("no images to split into training and validation sets")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = min(round(n * val_fraction), max_val, n - 1)
    if val_fraction > 0 and max_val > 0 and n >= 2:
        n_val = max(n_val, 1)

    def key(i: int) -> bytes:
        return hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest()

    val = sorted(heapq.nsmallest(n_val, range(n), key=key))
    held_out = set(val)
    return [i for i in range(n) if i not in held_out], val
