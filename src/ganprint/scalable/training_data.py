"""Training images for GANs: streamed from any `ganprint.data` source, all of one size, in a
deterministic order that a resumed or multi-process run reproduces exactly.

Every image must have the size of the dataset's first image (a GAN learns one image size; a folder of
mixed sizes would be silently distorted by cropping). Images of that size are brought to the training
resolution with the usual resize-and-centre-crop (e.g. Fashion-MNIST's 28x28 to 32x32). Unreadable
single images are skipped with a warning (the next image takes their place).
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data import ImageSource, open_source, pil_to_uint8, preprocess
from ..dataset_tool import MANIFEST, open_dataset
from ..errors import BadImageError, GanprintError


def _size_hint(resolution: int) -> str:
    return f"make a uniform dataset with `ganprint dataset create-from-images --resolution {resolution}`"


# Decoded training images are kept in memory (uint8) when the whole set fits in this many bytes: a
# small dataset is read ~5 times in a CPU run, and decoding a PNG costs 3% of a cpu32 GAN step.
CACHE_LIMIT_BYTES = 2 << 30


class UniformImages(Dataset):
    """`dataset[i]` is (3, R, R) in [0, 1], or a one-line error string when image i breaks the rules
    (the main process raises it: messages from DataLoader workers would come wrapped in tracebacks).

    With `cache`, each image is decoded once and kept as uint8 (exactly the values decoding gives
    again), if the whole set fits in CACHE_LIMIT_BYTES."""

    def __init__(self, source: ImageSource, resolution: int, size: tuple[int, int], strict: bool = False,
                 cache: bool = False):  # fmt: skip
        self.source, self.resolution, self.size, self.strict = source, resolution, size, strict
        self._bad: set[int] = set()
        fits = len(source) * 3 * resolution * resolution <= CACHE_LIMIT_BYTES
        # Allocated lazily by the OS: memory grows as images are first read.
        self._cache = torch.empty(len(source), 3, resolution, resolution, dtype=torch.uint8) if cache and fits else None
        self._cached = torch.zeros(len(source), dtype=torch.bool) if self._cache is not None else None

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> torch.Tensor | str:
        n = len(self.source)
        for step in range(n):
            k = (i + step) % n
            if k in self._bad:
                continue
            if self._cached is not None and self._cached[k]:
                return self._cache[k].float().div_(255)
            try:
                img = self.source.image(k)
            except BadImageError as exc:
                if self.strict:
                    return str(exc)
                self._bad.add(k)
                print(f"warning: skipped {exc} (using the next image instead)", file=sys.stderr)
                continue
            if img.size != self.size:
                w, h = img.size
                return (f"{self.source.location(k)}: {w}x{h}, but the dataset's images are "
                        f"{self.size[0]}x{self.size[1]}; {_size_hint(self.resolution)}")  # fmt: skip
            pixels = pil_to_uint8(preprocess(img, self.resolution))
            if self._cache is not None:
                self._cache[k], self._cached[k] = pixels, True
            return pixels.float().div_(255)
        return f"{self.source.spec}: none of the {n} images could be read"


def open_training_source(spec: str | os.PathLike) -> ImageSource:
    """A dataset made by `ganprint dataset` (its manifest checked against its files) or any
    `ganprint.data.open_source` spec."""
    path = Path(os.fspath(spec))
    has_manifest = path.is_dir() and (path / MANIFEST).is_file()
    if path.is_file() and path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                has_manifest = MANIFEST in zf.namelist()
        except (zipfile.BadZipFile, OSError):
            pass  # open_source reports it
    return open_dataset(path).source if has_manifest else open_source(spec)


def first_image_size(source: ImageSource, strict: bool = False) -> tuple[int, int]:
    """The size of the first readable image; the size every other image must have."""
    for k in range(len(source)):
        try:
            return source.image(k).size
        except BadImageError as exc:
            if strict:
                raise
            print(f"warning: skipped {exc}", file=sys.stderr)
    raise GanprintError(f"{source.spec}: none of the {len(source)} images could be read")


class StepBatches(Sampler):
    """This process's share of the global batch of every step in [start, total).

    Epoch e visits the images in a permutation seeded by (seed, e); the global batch of a step is
    split into `world` consecutive parts, part `rank` for this process. Datasets smaller than a batch
    are sampled with replacement.
    """

    def __init__(self, n: int, batch: int, seed: int, start: int, total: int, rank: int = 0, world: int = 1):
        self.n, self.batch, self.seed, self.start, self.total = n, batch, seed, start, total
        self.rank, self.world = rank, world
        self.per_epoch = max(1, n // batch)

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self):
        perm, perm_epoch = None, -1
        part = self.batch // self.world
        for step in range(self.start, self.total):
            epoch, pos = divmod(step, self.per_epoch)
            if epoch != perm_epoch:
                perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
                perm_epoch = epoch
            idx = perm[pos * self.batch : (pos + 1) * self.batch]
            if len(idx) < self.batch:
                g = torch.Generator().manual_seed(self.seed * 7919 + 1_000_000_007 + step)
                idx = torch.cat([idx, torch.randint(0, self.n, (self.batch - len(idx),), generator=g)])
            yield idx[self.rank * part : (self.rank + 1) * part].tolist()


def _collate(items: list[torch.Tensor | str]) -> torch.Tensor:
    for item in items:
        if isinstance(item, str):
            return item  # type: ignore[return-value]
    return torch.stack(items)


def training_batches(source: ImageSource, resolution: int, batch: int, seed: int, start: int, total: int,
                     rank: int = 0, world: int = 1, num_workers: int = 0, strict: bool = False):  # fmt: skip
    """Yield this process's image batches (B / world, 3, R, R) in [0, 1] for steps start+1 .. total."""
    size = first_image_size(source, strict)
    loader = DataLoader(
        # Worker processes would each hold a copy of the cache; they decode off the main process anyway.
        UniformImages(source, resolution, size, strict, cache=num_workers == 0),
        batch_sampler=StepBatches(len(source), batch, seed, start, total, rank, world),
        num_workers=num_workers, collate_fn=_collate, persistent_workers=False,
    )  # fmt: skip
    for images in loader:
        if isinstance(images, str):
            raise GanprintError(images)
        yield images


def sample_images(source: ImageSource, resolution: int, count: int) -> torch.Tensor:
    """The first `count` readable images (3, R, R), for the reals grid."""
    size = first_image_size(source)
    data = UniformImages(source, resolution, size)
    out = []
    for i in range(min(count, len(source))):
        item = data[i]
        if isinstance(item, str):
            raise GanprintError(item)
        out.append(item)
    return torch.stack(out)
