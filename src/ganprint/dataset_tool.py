"""Making training datasets: a zip or folder of PNGs plus a JSON manifest (docs/dataset-format.md).

Every `create_*` function streams: one image is decoded, converted, PNG-encoded and written at a
time, and the manifest's per-file list goes to a temporary file, so memory stays flat in the number
of images. Outputs are written under a temporary name and renamed into place at the end; an
existing output is only replaced with `overwrite=True`.

Conversions (images are first decoded by `ganprint.data.load_image`, so every mode becomes 8-bit
RGB by the data module's documented rules; MNIST-like data stays 8-bit greyscale):

* celeba: aligned CelebA images must be 178 x 218; the 128 x 128 box centred at (x, y) = (89, 121)
  (rows 57..184, columns 25..152) is cut out, then resized to `resolution` if that is not 128;
* images, lsun, cifar10, mnist (with a resolution): `center_crop_resize`: the centred square of side
  min(w, h) (offsets floor((w - s) / 2), floor((h - s) / 2)), resized to R x R with Lanczos if
  its side is not R. Without a resolution, every image must be square and of the first image's
  size (a clear error otherwise);
* one unreadable image, or a CelebA image of the wrong size, is skipped with a warning (an error
  with `strict=True`); an empty or unreadable source, or no readable image at all, is an error.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Iterable, Iterator, NamedTuple, TypedDict

import numpy as np
from PIL import Image
from tqdm import tqdm

from .data import ImageSource, load_image, open_source
from .errors import BadImageError, GanprintError
from .limits import check_resolution, free_bytes
from .restricted_pickle import load_data_pickle

if TYPE_CHECKING:  # annotations are strings here, so Python 3.10 never needs typing.Unpack at run time
    from typing_extensions import Unpack

MANIFEST = "dataset.json"
FORMAT = "ganprint-dataset"
FORMAT_VERSION = 1

CELEBA_SIZE = (178, 218)  # (width, height) of aligned CelebA
CELEBA_BOX = (25, 57, 153, 185)  # 128 x 128 centred at (x, y) = (89, 121): columns 25..152, rows 57..184

CIFAR10_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_MNIST_LABEL_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
MNIST_LABEL_NAMES = [str(d) for d in range(10)]

_CIFAR_SPLITS = {
    "train": [f"data_batch_{i}" for i in range(1, 6)],
    "test": ["test_batch"],
    "all": [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
}
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_META = "batches.meta"
_MAX_PICKLE = 512 * 1024 * 1024
_IDX_LABEL_MAGIC = b"\x00\x00\x08\x01"
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same input gives the same zip bytes


def _tool_version() -> str:
    try:
        return metadata.version("ganprint")
    except metadata.PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------------- conversions


def center_crop_resize(img: Image.Image, resolution: int) -> Image.Image:
    """The centred square of side min(w, h), resized to resolution x resolution (Lanczos) if needed."""
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    if (w, h) != (s, s):
        img = img.crop((left, top, left + s, top + s))
    if s != resolution:
        img = img.resize((resolution, resolution), Image.LANCZOS)
    return img


def celeba_crop(img: Image.Image, resolution: int = 128) -> Image.Image:
    """The 128 x 128 CelebA face box of an aligned 178 x 218 image, resized to `resolution` if needed.

    Raises BadImageError (without a file name) for an image of another size.
    """
    if img.size != CELEBA_SIZE:
        w, h = img.size
        raise BadImageError(f"is {w}x{h}, not the 178x218 of aligned CelebA")
    img = img.crop(CELEBA_BOX)
    if resolution != 128:
        img = img.resize((resolution, resolution), Image.LANCZOS)
    return img


class _Converter:
    """Brings each image to the dataset's resolution and mode; learns the resolution if not given."""

    def __init__(self, resolution: int | None, mode: str = "RGB", celeba: bool = False):
        if resolution is not None:
            check_resolution(resolution)  # before any image is converted to it
        self.resolution, self.mode, self.celeba = resolution, mode, celeba
        self.explicit = resolution is not None  # otherwise the first image sets it and all must match

    def __call__(self, img: Image.Image, location: str) -> Image.Image:
        img = img if img.mode == self.mode else img.convert(self.mode)
        if self.celeba:
            try:
                return celeba_crop(img, self.resolution or 128)
            except BadImageError as e:
                raise BadImageError(f"{location}: {e}") from None
        w, h = img.size
        if self.resolution is None:
            if w != h:
                raise GanprintError(
                    f"{location}: is {w}x{h}, not square; pass --resolution to center-crop and resize every image"
                )
            self.resolution = w
        r = self.resolution
        if (w, h) == (r, r):
            return img
        if not self.explicit:
            raise GanprintError(
                f"{location}: is {w}x{h}, but the first image was {r}x{r}; pass --resolution to "
                "center-crop and resize every image to one size"
            )
        return center_crop_resize(img, r)


# ----------------------------------------------------------------------------- items


@dataclass
class _Item:
    name: str  # the image's name in its source (recorded in the manifest)
    location: str  # where it is, for messages
    load: Callable[[], Image.Image]  # decodes it; raises BadImageError
    label: int | None = None


def _source_items(source: ImageSource, order: Iterable[int]) -> Iterator[_Item]:
    for i in order:
        i = int(i)
        yield _Item(source.names[i], source.location(i), (lambda i=i: source.image(i)))


# ----------------------------------------------------------------------------- writing


@dataclass
class DatasetSummary:
    output: Path
    count: int  # images written
    skipped: int  # unreadable images left out
    resolution: int
    channels: int
    labels: bool = False
    notes: list[str] = field(default_factory=list)


class WriteOptions(TypedDict, total=False):
    """How every create_* function writes its dataset (keyword arguments; defaults are `_build`'s)."""

    strict: bool  # an unreadable image is an error instead of a warning [False]
    overwrite: bool  # replace an existing output [False]
    progress: bool  # tqdm bar on stderr [True]
    on_bad: Callable[[str], None] | None  # called with each skipped image's message [warn on stderr]


def _is_zip_output(output: Path) -> bool:
    return output.suffix.lower() == ".zip"


def _check_output(output: Path, overwrite: bool) -> None:
    if not os.path.lexists(output):
        return
    if not overwrite:
        raise GanprintError(f"{output} already exists; choose another output or pass --overwrite to replace it")
    if _is_zip_output(output):
        if output.is_dir():
            raise GanprintError(f"{output} is a folder; refusing to replace it with a zip file")
        return
    if not output.is_dir():
        raise GanprintError(f"{output} exists and is not a folder; refusing to replace it with a dataset folder")
    if any(output.iterdir()) and not (output / MANIFEST).is_file():
        raise GanprintError(
            f"{output} is a non-empty folder that is not a ganprint dataset (no {MANIFEST}); refusing to replace it"
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _ZipWriter:
    """PNGs stored (not re-compressed) in a zip written beside the target, renamed at commit."""

    def __init__(self, output: Path):
        self.output = output
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.zip = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED, allowZip64=True)

    def _info(self, name: str, compress: int = zipfile.ZIP_STORED) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
        info.external_attr = 0o644 << 16
        info.compress_type = compress
        return info

    def add(self, name: str, data: bytes) -> None:
        self.zip.writestr(self._info(name), data)

    def open_manifest(self) -> IO[str]:
        raw = self.zip.open(self._info(MANIFEST, zipfile.ZIP_DEFLATED), "w", force_zip64=True)
        return io.TextIOWrapper(raw, encoding="utf-8", newline="\n")

    def commit(self) -> None:
        self.zip.close()
        os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp makes it private; a dataset is an ordinary file
        os.replace(self.tmp, self.output)

    def abort(self) -> None:
        try:
            self.zip.close()
        except Exception:  # already failing; the temporary file goes anyway
            pass
        self.tmp.unlink(missing_ok=True)


class _FolderWriter:
    """PNGs in a hidden staging folder beside the target, renamed into place at commit."""

    def __init__(self, output: Path):
        self.output = output
        output.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
        self._dirs: set[str] = set()

    def add(self, name: str, data: bytes) -> None:
        parent = name.rpartition("/")[0]
        if parent and parent not in self._dirs:
            (self.staging / parent).mkdir(parents=True, exist_ok=True)
            self._dirs.add(parent)
        (self.staging / name).write_bytes(data)

    def open_manifest(self) -> IO[str]:
        return open(self.staging / MANIFEST, "w", encoding="utf-8", newline="\n")

    def commit(self) -> None:
        os.chmod(self.staging, 0o777 & ~_umask())  # mkdtemp makes it private
        backup = None
        if os.path.lexists(self.output):  # checked by _check_output: an old dataset or an empty folder
            backup = self.output.with_name(f".{self.output.name}.old-{os.getpid()}")
            self.output.rename(backup)
        self.staging.rename(self.output)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _file_name(index: int) -> str:
    # 1000 images per subfolder keeps folders small; sorted names are in index order.
    return f"{index // 1000:05d}/img{index:08d}.png"


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")  # no metadata: the same pixels give the same bytes
    return buf.getvalue()


def _write_manifest(out: IO[str], header: dict, entries: IO[str]) -> None:
    """JSON with one line per header key and per file entry (the file list streamed from `entries`)."""
    out.write("{\n")
    for key, value in header.items():
        out.write(f"  {json.dumps(key)}: {json.dumps(value)},\n")
    out.write('  "files": [\n')
    entries.seek(0)
    shutil.copyfileobj(entries, out)
    out.write("\n  ]\n}\n")


def _warn(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


def _build(
    output: str | os.PathLike,
    items: Iterable[_Item],
    *,
    kind: str,
    source: str,
    options: dict,
    convert: _Converter,
    total: int | None,
    num_images: int | None,
    label_names: list[str] | None = None,
    strict: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_bad: Callable[[str], None] | None = None,
) -> DatasetSummary:
    """Write `items` (converted) as a dataset; the shared loop of every create_* function."""
    out = Path(output)
    _check_output(out, overwrite)
    if num_images is not None and num_images < 1:
        raise GanprintError(f"--num-images must be positive, got {num_images}")
    report = on_bad or (lambda message: _warn(f"skipped {message}"))
    expected = min(x for x in (total, num_images) if x is not None) if (total or num_images) else None
    if expected and convert.resolution:
        raw = expected * convert.resolution**2 * (1 if convert.mode == "L" else 3)
        free = free_bytes(out.parent)
        if raw > free:  # PNG compression may still make it fit: a warning, not a refusal
            _warn(f"{out}: {expected} images of {convert.resolution}x{convert.resolution} are up to "
                  f"{raw / 2**20:.0f} MB uncompressed, and its disk has {free / 2**20:.0f} MB free")  # fmt: skip
    writer = _ZipWriter(out) if _is_zip_output(out) else _FolderWriter(out)
    count = skipped = 0
    has_labels: bool | None = None
    bar = tqdm(total=expected, desc=f"dataset {kind}", unit="img", disable=not progress, dynamic_ncols=True)
    try:
        with tempfile.TemporaryFile("w+", encoding="utf-8") as entries:
            for item in items:
                if num_images is not None and count >= num_images:
                    break
                try:
                    img = convert(item.load(), item.location)
                except BadImageError as e:
                    if strict:
                        raise
                    report(str(e))
                    skipped += 1
                    continue
                if has_labels is None:
                    has_labels = item.label is not None
                name = _file_name(count)
                writer.add(name, _png_bytes(img))
                entry = {"name": name, "source": item.name}
                if has_labels:
                    entry["label"] = int(item.label)
                entries.write(("" if count == 0 else ",\n") + "    " + json.dumps(entry))
                count += 1
                bar.update(1)
            bar.close()
            if count == 0:
                what = f"none of its {skipped} images could be read" if skipped else "no images found"
                raise GanprintError(f"{source}: {what}")
            header = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "tool_version": _tool_version(),
                "kind": kind,
                "source": source,
                "options": options,
                "resolution": convert.resolution,
                "channels": 1 if convert.mode == "L" else 3,
                "count": count,
                "skipped": skipped,
                "label_names": label_names if has_labels else None,
            }
            with writer.open_manifest() as manifest:
                _write_manifest(manifest, header, entries)
        writer.commit()
    except BaseException:
        bar.close()
        writer.abort()
        raise
    finally:
        close = getattr(items, "close", None)
        if close is not None:  # a reader generator releases its database or file now
            close()
    summary = DatasetSummary(out, count, skipped, convert.resolution, header["channels"], bool(has_labels))
    if num_images is not None and count < num_images:
        summary.notes.append(f"only {count} readable images in the source; --num-images asked for {num_images}")
    return summary


# ----------------------------------------------------------------------------- creators


def _spec(source: str | os.PathLike) -> str:
    return os.fspath(source)


def create_celeba(
    output: str | os.PathLike,
    source: str | os.PathLike,
    num_images: int | None = None,
    resolution: int = 128,
    **write: Unpack[WriteOptions],
) -> DatasetSummary:
    """The first `num_images` readable aligned CelebA images in name order, cropped to the face box."""
    src = open_source(source)
    return _build(
        output, _source_items(src, range(len(src))), kind="celeba", source=_spec(source),
        options={"num_images": num_images, "resolution": resolution, "crop_box": list(CELEBA_BOX)},
        convert=_Converter(resolution, celeba=True), total=len(src), num_images=num_images,
        **write,
    )  # fmt: skip


def create_from_images(
    output: str | os.PathLike,
    source: str | os.PathLike,
    resolution: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    num_images: int | None = None,
    **write: Unpack[WriteOptions],
) -> DatasetSummary:
    """Any image source of `ganprint.data.open_source` (folder, zip, idx, ...), center-cropped and resized.

    With `shuffle`, images are taken in the order `numpy.random.RandomState(seed).permutation(n)`.
    """
    src = open_source(source)
    order = np.random.RandomState(seed).permutation(len(src)) if shuffle else range(len(src))
    return _build(
        output, _source_items(src, order), kind="images", source=_spec(source),
        options={"num_images": num_images, "resolution": resolution, "shuffle": shuffle,
                 "seed": seed if shuffle else None},
        convert=_Converter(resolution), total=len(src), num_images=num_images,
        **write,
    )  # fmt: skip


# LSUN ------------------------------------------------------------------------


def _import_lmdb():
    try:
        import lmdb
    except ImportError:
        raise GanprintError("reading LSUN needs the lmdb package: pip install lmdb") from None
    return lmdb


def _open_lmdb(path: Path):
    lmdb = _import_lmdb()
    if not path.exists():
        raise GanprintError(f"{path}: no such file or directory")
    try:
        # LSUN ships a folder with data.mdb (and lock.mdb); read-only and without a lock file so a
        # read-only copy works too.
        return lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=path.is_dir(), max_readers=4)
    except lmdb.Error as e:
        raise GanprintError(" ".join(f"{path}: not a readable LMDB database ({e})".split())) from None


def _lsun_items(env, spec: str) -> Iterator[_Item]:
    import lmdb

    try:
        with env.begin(write=False) as txn:
            for key, value in txn.cursor():
                name = key.decode("utf-8", "replace")
                location = f"{spec}:{name}"
                yield _Item(name, location, (lambda v=bytes(value), loc=location: load_image(v, name=loc)))
    except lmdb.Error as e:
        raise GanprintError(" ".join(f"{spec}: corrupt LMDB database ({e})".split())) from None


def create_lsun(
    output: str | os.PathLike,
    source: str | os.PathLike,
    resolution: int | None = 256,
    num_images: int | None = None,
    **write: Unpack[WriteOptions],
) -> DatasetSummary:
    """An LSUN LMDB database (keys -> encoded WebP/JPEG images), in key order, center-cropped and resized."""
    lmdb = _import_lmdb()

    path = Path(source)
    env = _open_lmdb(path)
    try:
        try:
            total = env.stat()["entries"]
        except lmdb.Error as e:
            raise GanprintError(" ".join(f"{path}: corrupt LMDB database ({e})".split())) from None
        if total == 0:
            raise GanprintError(f"{path}: the LMDB database is empty")
        return _build(
            output, _lsun_items(env, _spec(source)), kind="lsun", source=_spec(source),
            options={"num_images": num_images, "resolution": resolution},
            convert=_Converter(resolution), total=total, num_images=num_images,
            **write,
        )  # fmt: skip
    finally:
        env.close()


# CIFAR-10 --------------------------------------------------------------------


class _CifarFiles:
    """The CIFAR-10 python batches in a folder (or its cifar-10-batches-py/) or a .tar.gz, by name."""

    def __init__(self, path: Path):
        self.path = path
        self.tar: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}
        if path.is_dir():
            self.folder = path / _CIFAR_FOLDER if (path / _CIFAR_FOLDER).is_dir() else path
        elif path.is_file():
            try:
                self.tar = tarfile.open(path, "r:*")
                # Members are read into memory by base name; nothing is extracted to disk.
                self.members = {Path(m.name).name: m for m in self.tar.getmembers() if m.isfile()}
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                raise GanprintError(
                    " ".join(f"{path}: not a CIFAR-10 folder or readable .tar.gz ({e})".split())
                ) from None
        else:
            raise GanprintError(f"{path}: no such file or directory")

    def has(self, name: str) -> bool:
        return name in self.members if self.tar else (self.folder / name).is_file()

    def label(self, name: str) -> str:
        return f"{self.path}:{name}" if self.tar else str(self.folder / name)

    def read(self, name: str) -> bytes:
        try:
            if self.tar:
                member = self.members[name]
                if member.size > _MAX_PICKLE:
                    raise GanprintError(f"{self.label(name)}: too large for a CIFAR-10 batch ({member.size} bytes)")
                f = self.tar.extractfile(member)
                return f.read() if f else b""
            size = (self.folder / name).stat().st_size
            if size > _MAX_PICKLE:
                raise GanprintError(f"{self.label(name)}: too large for a CIFAR-10 batch ({size} bytes)")
            return (self.folder / name).read_bytes()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise GanprintError(" ".join(f"{self.label(name)}: cannot read ({e})".split())) from None

    def close(self) -> None:
        if self.tar:
            self.tar.close()


def read_cifar_batch(data: bytes, name: str) -> tuple[np.ndarray, list[int]]:
    """Images (N, 32, 32, 3) uint8 and labels of one CIFAR-10 python batch, read without unpickling."""
    obj = load_data_pickle(data, name)

    def get(key: str):
        if isinstance(obj, dict):
            return obj.get(key.encode(), obj.get(key))
        return None

    images, labels = get("data"), get("labels")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072:
        what = "no 'data'" if images is None else "'data' is not an N x 3072 uint8 array"
        raise GanprintError(f"{name}: not a CIFAR-10 batch ({what})")
    if not isinstance(labels, list) or len(labels) != len(images):
        raise GanprintError(f"{name}: not a CIFAR-10 batch ('labels' is not a list of {len(images)} labels)")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10 for v in labels):
        raise GanprintError(f"{name}: not a CIFAR-10 batch (labels outside 0..9)")
    # Rows are the red, green and blue 32 x 32 planes one after the other.
    return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _cifar_label_names(files: _CifarFiles) -> list[str]:
    if not files.has(_CIFAR_META):
        return list(CIFAR10_LABEL_NAMES)
    meta = load_data_pickle(files.read(_CIFAR_META), files.label(_CIFAR_META))
    names = meta.get(b"label_names", meta.get("label_names")) if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != 10:
        return list(CIFAR10_LABEL_NAMES)
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]


def _cifar_items(files: _CifarFiles, batches: list[str]) -> Iterator[_Item]:
    for batch in batches:  # one batch (10,000 images, 30 MB) in memory at a time
        images, labels = read_cifar_batch(files.read(batch), files.label(batch))
        for i in range(len(images)):
            name = f"{batch}:{i:05d}"
            load = lambda a=images[i]: Image.fromarray(np.ascontiguousarray(a))  # noqa: E731
            yield _Item(name, f"{files.label(batch)}:{i}", load, labels[i])


def create_cifar10(
    output: str | os.PathLike,
    source: str | os.PathLike,
    split: str = "train",
    resolution: int | None = None,
    num_images: int | None = None,
    **write: Unpack[WriteOptions],
) -> DatasetSummary:
    """CIFAR-10's python batches (folder or cifar-10-python.tar.gz) with labels; split train, test or all."""
    if split not in _CIFAR_SPLITS:
        raise GanprintError(f"unknown CIFAR-10 split {split!r}; use train, test or all")
    files = _CifarFiles(Path(source))
    try:
        batches = _CIFAR_SPLITS[split]
        missing = [b for b in batches if not files.has(b)]
        if missing:
            raise GanprintError(
                f"{source}: no {', '.join(missing)} (expected CIFAR-10's python batches data_batch_1..5 and "
                "test_batch, in a folder or cifar-10-python.tar.gz)"
            )
        return _build(
            output, _cifar_items(files, batches), kind="cifar10", source=_spec(source),
            options={"split": split, "num_images": num_images, "resolution": resolution},
            convert=_Converter(resolution), total=10000 * len(batches), num_images=num_images,
            label_names=_cifar_label_names(files),
            **write,
        )  # fmt: skip
    finally:
        files.close()


# MNIST / Fashion-MNIST ---------------------------------------------------------


def _idx_images_file(folder: Path, split: str) -> Path:
    stem = f"{_IDX_PREFIX[split]}-images-idx3-ubyte"
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise GanprintError(f"{folder}: no {stem}[.gz] (the {split} images of an MNIST-like data set)")


def _labels_beside(images: Path) -> Path | None:
    name = images.name
    if "images-idx3" not in name:
        return None
    stem = name.replace("images-idx3", "labels-idx1")
    stem = stem[:-3] if stem.lower().endswith(".gz") else stem
    for candidate in (images.with_name(stem + ".gz"), images.with_name(stem)):
        if candidate.is_file():
            return candidate
    return None


def read_idx_labels(path: Path, count: int) -> list[int]:
    """The labels of an idx1-ubyte file (optionally .gz), which must hold `count` of them."""
    gz = path.name.lower().endswith(".gz")
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            header = f.read(8)
            if len(header) < 8 or header[:4] != _IDX_LABEL_MAGIC:
                raise GanprintError(f"{path}: not an idx label file (magic 0x{header[:4].hex()}, expected 0x00000801)")
            n = int.from_bytes(header[4:8], "big")
            if n != count:
                raise GanprintError(f"{path}: holds {n} labels for {count} images")
            data = f.read(count + 1)
    except GanprintError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        raise GanprintError(" ".join(f"{path}: cannot read idx labels ({e})".split())) from None
    if len(data) != count:
        raise GanprintError(f"{path}: {'truncated' if len(data) < count else 'longer than its header says'} idx label file")
    return list(data)


def create_idx(
    output: str | os.PathLike,
    source: str | os.PathLike,
    kind: str = "mnist",
    split: str = "train",
    labels: str | os.PathLike | None = None,
    resolution: int | None = None,
    num_images: int | None = None,
    **write: Unpack[WriteOptions],
) -> DatasetSummary:
    """MNIST-like idx data (greyscale, channels 1) with labels found beside the images or given.

    `source` is an images idx file, a folder holding `{train,t10k}-images-idx3-ubyte[.gz]` (chosen by
    `split`), or `fashion-mnist` (the Debian dataset-fashion-mnist package; `split` picks the file).
    """
    if split not in _IDX_PREFIX:
        raise GanprintError(f"unknown split {split!r}; use train or test")
    spec = _spec(source)
    if os.path.isdir(spec):
        src = open_source(_idx_images_file(Path(spec), split))
    elif spec == "fashion-mnist" and not os.path.lexists(spec):
        spec = f"fashion-mnist:{split}"
        src = open_source(spec)
    else:
        src = open_source(spec)  # an idx file, or fashion-mnist:train / fashion-mnist:test
    images_path = getattr(src, "path", None)
    if images_path is None:
        raise GanprintError(f"{spec}: not an idx images file (*-idx3-ubyte[.gz]) or a folder holding one")
    labels_path = Path(labels) if labels is not None else _labels_beside(images_path)
    label_list = read_idx_labels(labels_path, len(src)) if labels_path is not None else None
    names = {"fashion-mnist": FASHION_MNIST_LABEL_NAMES, "mnist": MNIST_LABEL_NAMES}.get(kind)

    def items() -> Iterator[_Item]:
        for i, item in enumerate(_source_items(src, range(len(src)))):
            item.label = label_list[i] if label_list is not None else None
            yield item

    summary = _build(
        output, items(), kind=kind, source=spec,
        options={"split": split, "num_images": num_images, "resolution": resolution,
                 "labels": str(labels_path) if labels_path else None},
        convert=_Converter(resolution, mode="L"), total=len(src), num_images=num_images, label_names=names,
        **write,
    )  # fmt: skip
    if label_list is None:
        summary.notes.append(f"no labels file found beside {images_path}; the dataset has no labels")
    return summary


# ----------------------------------------------------------------------------- reading back


@dataclass
class DatasetManifest:
    """The parsed dataset.json (see docs/dataset-format.md)."""

    resolution: int
    channels: int
    count: int
    kind: str
    source: str
    files: list[str]  # image names inside the dataset, in order
    source_names: list[str]  # each image's name in the original source
    labels: list[int] | None
    label_names: list[str] | None
    options: dict
    skipped: int
    tool_version: str
    format_version: int


class OpenedDataset(NamedTuple):
    source: ImageSource  # lazy: images are decoded when asked for
    manifest: DatasetManifest


def _read_manifest_text(path: Path) -> tuple[str, str]:
    if path.is_dir():
        file = path / MANIFEST
        if not file.is_file():
            raise GanprintError(
                f"{path}: not a ganprint dataset (no {MANIFEST}); make one with `ganprint dataset create-from-images`"
            )
        return str(file), file.read_text(encoding="utf-8")
    label = f"{path}:{MANIFEST}"
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                return label, zf.read(MANIFEST).decode("utf-8")
            except KeyError:
                raise GanprintError(
                    f"{path}: not a ganprint dataset (no {MANIFEST} in the zip); "
                    "make one with `ganprint dataset create-from-images`"
                ) from None
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise GanprintError(" ".join(f"{path}: not a readable zip file ({e})".split())) from None


def read_manifest(path: str | os.PathLike) -> DatasetManifest:
    """The manifest of a dataset folder or zip; GanprintError if it is missing or malformed."""
    path = Path(path)
    if not path.exists():
        raise GanprintError(f"{path}: no such file or directory")
    label, text = _read_manifest_text(path)
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GanprintError(f"{label}: not valid JSON ({e})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise GanprintError(f"{label}: not a ganprint dataset manifest (format is not {FORMAT!r})")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise GanprintError(
            f"{label}: dataset format version {version!r} is newer than this ganprint reads ({FORMAT_VERSION}); "
            "upgrade ganprint"
        )
    try:
        files = raw["files"]
        names = [f["name"] for f in files]
        if not all(isinstance(n, str) for n in names):
            raise TypeError("file names must be text")
        labels = [f.get("label") for f in files]
        if all(v is None for v in labels):
            labels = None
        elif not all(isinstance(v, int) for v in labels):
            raise TypeError("either every file has an integer label or none has")
        resolution, channels, count = raw["resolution"], raw["channels"], raw["count"]
        if not (isinstance(resolution, int) and resolution >= 1 and channels in (1, 3) and count == len(files)):
            raise ValueError(f"resolution {resolution!r}, channels {channels!r}, count {count!r} for {len(files)} files")
        return DatasetManifest(
            resolution=resolution, channels=channels, count=count, kind=str(raw.get("kind", "")),
            source=str(raw.get("source", "")), files=names, source_names=[str(f.get("source", "")) for f in files],
            labels=labels, label_names=raw.get("label_names"), options=dict(raw.get("options") or {}),
            skipped=int(raw.get("skipped", 0)), tool_version=str(raw.get("tool_version", "")), format_version=version,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        detail = f"missing {e}" if isinstance(e, KeyError) else str(e)
        raise GanprintError(" ".join(f"{label}: malformed manifest ({detail})".split())) from None


def open_dataset(path: str | os.PathLike, resolution: int | None = None) -> OpenedDataset:
    """A dataset made by `ganprint dataset`: its lazy image source and its manifest.

    With `resolution`, the dataset must have been made at that resolution (a clear error otherwise).
    `source.names[i]` is `manifest.files[i]`, and `manifest.labels[i]` its label.
    """
    manifest = read_manifest(path)
    r = manifest.resolution
    if resolution is not None and resolution != r:
        raise GanprintError(
            f"{path}: the dataset's images are {r}x{r}, but {resolution}x{resolution} are needed; "
            f"make it again with `ganprint dataset ... --resolution {resolution}`"
        )
    source = open_source(path)
    if source.names != manifest.files:
        missing = sorted(set(manifest.files) - set(source.names))
        extra = sorted(set(source.names) - set(manifest.files))
        detail = f"missing {missing[0]}" if missing else f"not listed: {extra[0]}" if extra else "out of order"
        raise GanprintError(
            f"{path}: the images do not match {MANIFEST} ({len(source)} images, {manifest.count} listed; {detail})"
        )
    return OpenedDataset(source, manifest)
