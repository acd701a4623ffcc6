"""Resource limits checked before any work: image sides, free disk space, and what an OS error means.

A request that cannot fit (a 100000-pixel side, a run on a full disk) is refused up front with a
sentence naming the limit, instead of failing with a MemoryError or ENOSPC half-way through.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from .errors import GanprintError

MAX_RESOLUTION = 4096  # pixels a side; one 4096x4096 RGB float32 image is already 200 MB
_MB = 1024 * 1024


def check_resolution(resolution: int, what: str = "--resolution") -> int:
    """`resolution` if it is a positive side of at most MAX_RESOLUTION pixels; a GanprintError otherwise."""
    resolution = int(resolution)
    if resolution < 1:
        raise GanprintError(f"{what} must be a positive number of pixels, got {resolution}")
    if resolution > MAX_RESOLUTION:
        gigabytes = 3 * resolution**2 / 1024**3
        raise GanprintError(
            f"{what} {resolution} is above the limit of {MAX_RESOLUTION} pixels a side (one {resolution}x{resolution} "
            f"RGB image is {gigabytes:.3g} GB as 8-bit, 4x that as float); choose {MAX_RESOLUTION} or less"
        )
    return resolution


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the disk that holds `path` (or its nearest existing parent folder)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_free_space(path: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse when the disk holding `path` has less than `needed` bytes free (a lower bound of what
    `what` will write, so that a refusal is never wrong)."""
    free = free_bytes(path)
    if free < needed:
        raise GanprintError(
            f"{path}: {free / _MB:.0f} MB free on its disk, but {what} needs at least {needed / _MB:.0f} MB; "
            f"free some space or choose a folder on another disk"
        )


_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space or choose a folder on another disk",
    errno.EDQUOT: "the disk quota is exhausted; free some space or choose a folder on another disk",
    errno.EACCES: "permission denied; choose a folder you can write to (or read, for inputs)",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.ENOENT: "no such file or directory; check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "is a folder where a file was expected; give a file path",
    errno.EEXIST: "already exists; remove it or choose another name",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or read fewer files at once",
    errno.ENFILE: "too many open files on the system; retry later",
    errno.EIO: "input/output error from the disk; check the device",
    errno.ENOMEM: "out of memory; use smaller batches or images",
    errno.EXDEV: "cannot move between disks; keep the output on one disk",
}


def describe_os_error(exc: OSError) -> str:
    """One sentence: the path(s), what happened, and what to do."""
    where = " -> ".join(os.fspath(p) for p in (exc.filename, exc.filename2) if p is not None)
    advice = _ADVICE.get(exc.errno) if exc.errno is not None else None
    reason = advice or (exc.strerror or str(exc) or exc.__class__.__name__)
    if where:
        return f"{where}: {reason}"
    return f"{reason} ({exc.strerror})" if advice and exc.strerror else reason
