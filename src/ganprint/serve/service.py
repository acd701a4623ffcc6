"""What the server serves, without HTTP: the loaded decoders with their calibrations, the registry
connection (reopened after an outage), and the per-image records of detect and attribute.

The records are the library's own: `Attribution.to_json()` (the fields of `ganprint attribute
--jsonl`) and `DetectionResult.records()`, so the server and the CLI cannot disagree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch

from ..attribution import Attributor
from ..calibration import Calibration, load_calibration
from ..decoders import Decoder, load_decoder
from ..detection import DetectionResult, NullModel
from ..errors import GanprintError
from ..fingerprints import parse_fingerprint
from ..registry import Registry
from .batching import Batcher
from .limits import ServeError


@dataclass
class ServedModel:
    """One decoder as served: `name` is how requests choose it (as given on the command line)."""

    name: str
    decoder: Decoder
    calibration: Calibration | None
    null: NullModel
    batcher: Batcher | None = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return self.decoder.method

    def describe(self) -> dict:
        cal = self.calibration
        return {
            "name": self.name,
            "method": self.method,
            "resolution": self.decoder.resolution,
            "fingerprint_length": self.decoder.fingerprint_length,
            "null": self.null.description,
            "calibration": None if cal is None else {
                "images": cal.images, "source": cal.source,
                "confidence_threshold": cal.confidence_threshold,
                "unknown_false_positive_rate": cal.unknown_false_positive_rate,
            },
        }  # fmt: skip


def load_model(name: str | None, method: str, device: str) -> ServedModel:
    """A decoder by the CLI's own resolution (`ganprint.decoders.load_decoder`; None: its default) and
    its calibration."""
    decoder = load_decoder(name, method, device)
    cal = load_calibration(decoder)
    null = cal.null_model() if cal else NullModel.fair(decoder.fingerprint_length)
    return ServedModel(name or decoder.name, decoder, cal, null)


def choose_model(models: list[ServedModel], name: str | None, method: str | None) -> ServedModel:
    """The model a request asks for: by name, else the first of the method, else the default (first)."""
    if name:
        for m in models:
            if m.name == name:
                if method and method != m.method:
                    raise ServeError(422, "unknown_model", f"model {name!r} is a {m.method} decoder, not {method}; "
                                     "leave out 'method' or choose a model of that method", field="method")  # fmt: skip
                return m
        known = ", ".join(m.name for m in models)
        raise ServeError(422, "unknown_model", f"unknown model {name!r}; this server has: {known} "
                         "(GET /v1/models lists them)", field="model")  # fmt: skip
    if method:
        for m in models:
            if m.method == method:
                return m
        methods = ", ".join(sorted({m.method for m in models}))
        raise ServeError(422, "unknown_model", f"this server has no {method!r} decoder (methods: {methods})",
                         field="method")  # fmt: skip
    return models[0]


def parse_expected(text: str, model: ServedModel) -> torch.Tensor:
    try:
        return parse_fingerprint(text, model.decoder.fingerprint_length)
    except GanprintError as e:
        raise ServeError(422, "bad_field", f"expected: {e}", field="expected") from None


def check_fpr(value: float | None) -> float | None:
    if value is not None and not 0 < value < 1:
        raise ServeError(422, "bad_field", f"fpr must be between 0 and 1 (exclusive), got {value:g}", field="fpr")
    return value


def detection_records(model: ServedModel, logits: torch.Tensor, images: torch.Tensor, names: list[str],
                      expected: torch.Tensor, fpr: float) -> list[dict]:  # fmt: skip
    """Per image against one expected fingerprint: DetectionResult.records(), verdict included."""
    result = DetectionResult.from_logits(logits, expected, fpr, model.null, images=images)
    return [{**record, "model": model.name, "false_positive_rate": fpr} for record in result.records(names)]


# ------------------------------------------------------------------------------------ registry
class RegistryUnavailable(ServeError):
    def __init__(self, where: str, reason: str):
        super().__init__(503, "registry_unavailable",
                         f"the fingerprint registry {where} cannot be reached ({reason}); the server keeps running "
                         "and answers again as soon as the registry is back: retry in a few seconds",
                         retry_after=5)  # fmt: skip


class RegistryAccess:
    """The registry for the server's threads: opened at start, reopened after a failure.

    A GanprintError of a read means the registry is down or damaged (503). A write's GanprintError
    is the caller's (a duplicate, an unknown model) when the registry still answers a count, else 503.
    """

    def __init__(self, location: str, timeout: float):
        self.location, self.timeout = location, timeout
        self._lock = threading.Lock()
        self._registry: Registry | None = None
        self.where = location
        self.registry()  # fail fast at start: a wrong --registry is a usage error, not an outage

    def registry(self) -> Registry:
        with self._lock:
            if self._registry is None:
                self._registry = Registry(self.location, timeout=self.timeout)
                self.where = self._registry.where
            return self._registry

    def _drop(self) -> None:
        with self._lock:
            if self._registry is not None:
                self._registry.close()
            self._registry = None

    def read(self, fn):
        """fn(registry) for a read; 503 if the registry fails."""
        try:
            return fn(self.registry())
        except GanprintError as e:
            self._drop()
            raise RegistryUnavailable(self.where, str(e)) from None

    def write(self, fn, status: int, kind: str):
        """fn(registry) for a write or a lookup; its own error as `status`/`kind` while the registry answers."""
        try:
            return fn(self.registry())
        except GanprintError as e:
            self.read(lambda reg: reg.count())  # raises 503 when the registry itself is the problem
            raise ServeError(status, kind, str(e)) from None

    def attributor(self, model: ServedModel, fpr: float) -> Attributor:
        """An Attributor over the registry as it is now: every request sees every replica's writes."""
        cal = model.calibration
        return self.read(lambda reg: Attributor.from_registry(
            reg, model.method, model.decoder.fingerprint_length, false_positive_rate=fpr, null=model.null,
            confidence_threshold=cal.confidence_threshold if cal else None, threads=1,
        ))  # fmt: skip

    def close(self) -> None:
        self._drop()
