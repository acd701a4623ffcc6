"""Fingerprints: bit strings as tensors, parsed from and written to text.

A fingerprint is a 1-D float tensor of 0.0/1.0 values. Users write them as a string of '0'/'1'
characters or as hexadecimal ('0x...' or plain hex with L/4 digits, most significant bit first).
The files `embedded_fingerprints.txt` / `detected_fingerprints.txt` keep the original tools' format:
one line per image, sorted by name, `<name> <L characters of 0/1>`, a single space, no header.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from .errors import GanprintError
from .io import atomic_write_text

_BITS = re.compile(r"^[01]+$")
_HEX = re.compile(r"^(0x)?[0-9a-fA-F]+$")


def random_fingerprints(count: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`count` fingerprints of `length` fair random bits, as a (count, length) float tensor."""
    return torch.randint(0, 2, (count, length), generator=generator).float()


def parse_fingerprint(text: str, length: int | None = None) -> torch.Tensor:
    """Parse '0101...' or hex ('0x9f...', '9f...') into a float tensor of bits.

    With `length`, a bit string must have exactly that many characters and hex exactly
    ceil(length / 4) digits (the leading bits of the first digit must be zero when length % 4 != 0).
    """
    s = text.strip().replace("_", "").replace(" ", "")
    if not s:
        raise GanprintError("empty fingerprint: give a string of 0/1 characters or hexadecimal digits")
    is_bits = bool(_BITS.match(s)) and not s.lower().startswith("0x")
    # A string of only 0/1 is read as bits when its length fits (or no length is known); as hex otherwise.
    if is_bits and (length is None or len(s) == length):
        return torch.tensor([float(c) for c in s])
    if _HEX.match(s):
        digits = s[2:] if s.lower().startswith("0x") else s
        if length is None:
            length = 4 * len(digits)
        n_digits = (length + 3) // 4
        if len(digits) != n_digits:
            raise GanprintError(
                f"fingerprint {text!r} has {len(digits)} hex digits; a {length}-bit fingerprint needs "
                f"{n_digits} hex digits or {length} 0/1 characters"
            )
        value = int(digits, 16)
        if value >> length:
            raise GanprintError(f"fingerprint {text!r} does not fit in {length} bits")
        return torch.tensor([float((value >> (length - 1 - i)) & 1) for i in range(length)])
    if is_bits:
        raise GanprintError(f"fingerprint has {len(s)} bits; this model needs {length}")
    raise GanprintError(f"fingerprint {text!r} is neither a 0/1 string nor hexadecimal")


def fingerprint_batch(fingerprints, count: int, length: int) -> torch.Tensor:
    """(count, length) 0/1 floats from one fingerprint (bits or a bits/hex string) for every image, or
    one per image (count, length); a GanprintError for anything else."""
    if isinstance(fingerprints, str):
        fingerprints = parse_fingerprint(fingerprints, length)
    bits = torch.as_tensor(fingerprints, dtype=torch.float32)
    if bits.ndim == 1:
        bits = bits.unsqueeze(0).expand(count, -1)
    if bits.shape != (count, length):
        raise GanprintError(f"expected {count} fingerprints of {length} bits, got shape {tuple(bits.shape)}")
    if not torch.all((bits == 0) | (bits == 1)):
        raise GanprintError("fingerprint bits must be 0 or 1")
    return bits


def bits_to_str(bits: torch.Tensor) -> str:
    """A 1-D tensor of bits as '0101...'."""
    return "".join("1" if v > 0.5 else "0" for v in bits.tolist())


def bits_to_hex(bits: torch.Tensor) -> str:
    """A 1-D tensor of bits as hex, most significant bit first, ceil(L/4) digits."""
    value = 0
    for v in bits.tolist():
        value = (value << 1) | int(v > 0.5)
    return f"{value:0{(len(bits) + 3) // 4}x}"


def write_fingerprint_file(path: str | os.PathLike, entries: dict[str, torch.Tensor]) -> None:
    """Write `<name> <bits>` lines sorted by name, atomically (original tools' format)."""
    lines = [f"{name} {bits_to_str(bits)}\n" for name, bits in sorted(entries.items())]
    atomic_write_text(path, "".join(lines))


def read_fingerprint_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an `embedded_fingerprints.txt`-style file into {name: bits}."""
    path = Path(path)
    if not path.is_file():
        raise GanprintError(f"{path}: fingerprint file not found")
    entries: dict[str, torch.Tensor] = {}
    length = None
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        raise GanprintError(f"{path}: not a readable fingerprint text file ({exc.__class__.__name__})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, bits = line.rstrip().rpartition(" ")
        if not sep or not name or not _BITS.match(bits):
            raise GanprintError(f"{path}:{number}: expected '<name> <0/1 bits>'")
        if length is not None and len(bits) != length:
            raise GanprintError(f"{path}:{number}: {len(bits)} bits where earlier lines have {length}")
        length = len(bits)
        entries[name] = torch.tensor([float(c) for c in bits])
    if not entries:
        raise GanprintError(f"{path}: no fingerprints in file")
    return entries
