"""The codec's configuration: everything needed to rebuild its networks, stored as config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import GanprintError

ARCHITECTURES = ("ganprint", "original")


@dataclass
class CodecConfig:
    arch: str = "ganprint"  # "ganprint" (residual codec, this project) or "original" (ICCV 2021 networks)
    resolution: int = 32  # images are RxR; a power of two >= 32
    fingerprint_length: int = 100  # bits per fingerprint
    channels: int = 64  # ganprint arch: width of encoder and decoder convolutions
    message_channels: int = 8  # ganprint arch: channels of the fingerprint map fed to the encoder
    residual_rms: float = 0.014  # ganprint arch: RMS of the added residual; PSNR ~ -20*log10(rms) dB
    mean_preserving: bool = False  # ganprint arch: fingerprinted images keep each channel's mean exactly

    def validate(self) -> "CodecConfig":
        if self.arch not in ARCHITECTURES:
            raise GanprintError(f"unknown codec architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        r = self.resolution
        if not isinstance(r, int) or r < 32 or r & (r - 1):
            raise GanprintError(f"resolution must be a power of two >= 32, got {r}")
        if not isinstance(self.fingerprint_length, int) or not 1 <= self.fingerprint_length <= 4096:
            raise GanprintError(f"fingerprint length must be between 1 and 4096, got {self.fingerprint_length}")
        if self.channels < 1 or self.message_channels < 1:
            raise GanprintError("channels and message_channels must be positive")
        if not isinstance(self.mean_preserving, bool):
            raise GanprintError(f"mean_preserving must be true or false, got {self.mean_preserving!r}")
        if not 0 < self.residual_rms < 1:
            raise GanprintError(f"residual_rms must be in (0, 1), got {self.residual_rms}")
        return self

    def to_dict(self) -> dict:
        return {"kind": "ganprint.codec", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "CodecConfig":
        if not isinstance(data, dict) or data.get("kind") != "ganprint.codec":
            kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
            raise GanprintError(f"{source}: not a ganprint codec config (kind {kind!r})")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"kind"})
        if unknown:
            raise GanprintError(f"{source}: unknown codec config fields {unknown}")
        try:
            return cls(**{k: v for k, v in data.items() if k in names}).validate()
        except TypeError as exc:
            raise GanprintError(f"{source}: bad codec config ({exc})") from None
