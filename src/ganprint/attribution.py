"""Attribution: which registered model, if any, made an image. Method-agnostic: input is bit
logits (N, L) from any decoder and the registered fingerprints of that method and length.

Statistics (docs/attribution.md). For the nearest registered fingerprint, k matching bits give a
per-comparison p-value p = P[null >= k] (fair-coin binomial, or the calibrated null). With N
registered fingerprints the chance that *any* of them matches a clean image that well is at most
N p (Bonferroni, the union bound: valid whatever the dependence between the N comparisons), so the
corrected p-value is min(1, N p). An image is attributed when min(1, N p) <= the false-positive rate
a, i.e. when its distance to a fingerprint is at most the *decision radius* r = L - k(a / N).

Verdicts:
  attributed             exactly one registered fingerprint lies within the decision radius.
  fingerprinted-unknown  the image is fingerprinted but no single registered model explains it:
                         (a) two or more registered fingerprints lie within the radius (ambiguous), or
                         (b) the decoder's confidence exceeds the calibrated clean-image threshold
                             (ganprint.calibration) while no registered fingerprint matches; not for
                             palette-quantized images, whose dithering is outside the calibration.
  not-fingerprinted      neither; includes every image when the registry is empty and uncalibrated.
  not-enough-signal      the image is too flat to decide (ganprint.texture): no verdict is given.

Matching: fingerprints are packed 64 bits to a word; distances are XOR + popcount, exact. faiss's
binary flat index does it when installed (about 1e9 comparisons per second per core), numpy's
bitwise_count otherwise. Only fingerprints within the *report radius* (where N p <= 1) are
collected: a farther "nearest" fingerprint carries no evidence at all (corrected p = 1).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from .detection import DEFAULT_FALSE_POSITIVE_RATE, NullModel, check_finite, confidence
from .errors import GanprintError
from .texture import ImageSignal

if TYPE_CHECKING:
    from .registry import Registry

ATTRIBUTED = "attributed"
UNKNOWN = "fingerprinted-unknown"
NOT_FINGERPRINTED = "not-fingerprinted"
NOT_ENOUGH_SIGNAL = "not-enough-signal"
VERDICTS = (ATTRIBUTED, UNKNOWN, NOT_FINGERPRINTED, NOT_ENOUGH_SIGNAL)
_LN10 = math.log(10)


# ----------------------------------------------------------------------------------- bit packing
def pack_bits(bits) -> np.ndarray:
    """(N, L) 0/1 (numpy, torch, bool or float) -> (N, ceil(L/64)) uint64; padding bits are 0."""
    if isinstance(bits, torch.Tensor):
        bits = bits.detach().cpu().numpy()
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise ValueError(f"expected bits of shape (N, L), got {bits.shape}")
    words = (bits.shape[1] + 63) // 64
    padded = np.zeros((bits.shape[0], words * 64), dtype=np.uint8)
    padded[:, : bits.shape[1]] = bits > 0.5
    return np.packbits(padded, axis=1).view(">u8").astype(np.uint64).reshape(bits.shape[0], words)


if hasattr(np, "bitwise_count"):  # numpy >= 2.0: a SIMD popcount

    def popcount(x: np.ndarray) -> np.ndarray:
        return np.bitwise_count(x)

else:  # pragma: no cover - numpy 1.x
    _POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def popcount(x: np.ndarray) -> np.ndarray:
        return _POP8[x.view(np.uint8)].reshape(*x.shape, 8).sum(-1, dtype=np.uint8)


def hamming(queries: np.ndarray, packed: np.ndarray) -> np.ndarray:
    """(Q, N) Hamming distances between packed rows; for small sets (tests, issuing)."""
    d = np.zeros((queries.shape[0], packed.shape[0]), dtype=np.int32)
    for w in range(packed.shape[1]):
        d += popcount(queries[:, w, None] ^ packed[None, :, w])
    return d


def min_distances(queries: np.ndarray, packed: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Distance from each packed query to its nearest packed row (a large number if there are none)."""
    best = np.full(queries.shape[0], np.iinfo(np.int32).max, dtype=np.int64)
    for start in range(0, packed.shape[0], chunk):
        np.minimum(best, hamming(queries, packed[start : start + chunk]).min(axis=1), out=best)
    return best


# --------------------------------------------------------------------------------- exact search
def _faiss():
    try:
        import faiss  # noqa: F401
    except ImportError:
        return None
    return faiss


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class FingerprintIndex:
    """Exact Hamming range search over N fingerprints of L bits.

    `search(bits, radius)` returns, per query, the registered rows within `radius` bits, nearest
    first (ties: lower row first). Backend "faiss" (IndexBinaryFlat), "numpy", or "auto".
    Queries are split over `threads` Python threads (both backends release the GIL).
    """

    def __init__(self, bits, backend: str = "auto", threads: int | None = None):
        if isinstance(bits, torch.Tensor):
            bits = bits.detach().cpu().numpy()
        bits = np.asarray(bits)
        if bits.ndim != 2:
            raise ValueError(f"expected fingerprints of shape (N, L), got {bits.shape}")
        self.size, self.length = bits.shape
        self.threads = threads or default_threads()
        self.parallel_min_work = 50_000_000  # query x fingerprint comparisons before threads are used
        faiss = _faiss() if backend in ("auto", "faiss") else None
        if backend == "faiss" and faiss is None:
            raise RuntimeError("faiss is not installed (pip install faiss-cpu)")
        if backend not in ("auto", "faiss", "numpy"):
            raise ValueError(f"unknown backend {backend!r}")
        self.backend = "faiss" if faiss is not None else "numpy"
        self.packed = pack_bits(bits)
        if self.backend == "faiss":
            self._faiss = faiss
            self._index = faiss.IndexBinaryFlat(self.packed.shape[1] * 64)
            if self.size:
                self._index.add(self._as_bytes(self.packed))

    @property
    def memory_bytes(self) -> int:
        """Bytes held for the fingerprints (the faiss index keeps one more packed copy)."""
        return self.packed.nbytes * (2 if self.backend == "faiss" else 1)

    @staticmethod
    def _as_bytes(packed: np.ndarray) -> np.ndarray:
        # big-endian words so that byte order = bit order, as faiss reads codes byte by byte
        return np.ascontiguousarray(packed.astype(">u8")).view(np.uint8).reshape(packed.shape[0], -1)

    def search(self, bits, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(distances, rows)] per query, within `radius` (inclusive), sorted by distance then row."""
        queries = pack_bits(bits)
        if queries.shape[0] == 0 or self.size == 0 or radius < 0:
            return [(np.zeros(0, np.int64), np.zeros(0, np.int64)) for _ in range(queries.shape[0])]
        # threads only pay off (and are only risked) for real work: about 50 ms of comparisons or more
        work = queries.shape[0] * self.size
        n_parts = min(self.threads, queries.shape[0]) if work >= self.parallel_min_work else 1
        parts = np.array_split(np.arange(queries.shape[0]), n_parts)
        run = self._search_faiss if self.backend == "faiss" else self._search_numpy
        if len(parts) == 1:
            found = [run(queries, int(radius))]
        else:
            if self.backend == "faiss":
                self._faiss.omp_set_num_threads(1)  # parallel over our threads: no OpenMP spinning
            with ThreadPoolExecutor(len(parts)) as pool:
                found = list(pool.map(lambda idx: run(queries[idx], int(radius)), parts))
        return [hit for part in found for hit in part]

    def _search_faiss(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        lims, dist, rows = self._index.range_search(self._as_bytes(queries), radius + 1)  # faiss: d < radius
        out = []
        for i in range(queries.shape[0]):
            d, r = dist[lims[i] : lims[i + 1]].astype(np.int64), rows[lims[i] : lims[i + 1]].astype(np.int64)
            order = np.lexsort((r, d))
            out.append((d[order], r[order]))
        return out

    def _search_numpy(self, queries: np.ndarray, radius: int, chunk: int = 1 << 14, block: int = 32):
        hits_q, hits_r, hits_d = [], [], []
        dtype = np.uint8 if self.packed.shape[1] * 64 <= 255 else np.uint16
        for qs in range(0, queries.shape[0], block):
            q = queries[qs : qs + block]
            for start in range(0, self.size, chunk):
                part = self.packed[start : start + chunk]
                d = popcount(q[:, 0, None] ^ part[None, :, 0]).astype(dtype, copy=False)
                for w in range(1, part.shape[1]):
                    d += popcount(q[:, w, None] ^ part[None, :, w]).astype(dtype, copy=False)
                qi, ri = np.nonzero(d <= radius)
                hits_q.append(qi + qs)
                hits_r.append(ri + start)
                hits_d.append(d[qi, ri].astype(np.int64))
        hq, hr, hd = (np.concatenate(h) if h else np.zeros(0, np.int64) for h in (hits_q, hits_r, hits_d))
        order = np.lexsort((hr, hd, hq))
        hq, hr, hd = hq[order], hr[order], hd[order]
        bounds = np.searchsorted(hq, np.arange(queries.shape[0] + 1))
        return [(hd[bounds[i] : bounds[i + 1]], hr[bounds[i] : bounds[i + 1]].astype(np.int64))
                for i in range(queries.shape[0])]  # fmt: skip


# ---------------------------------------------------------------------------------- attribution
@dataclass
class Attribution:
    """The verdict on one image and the evidence behind it."""

    name: str
    verdict: str
    model: str | None  # the attributed model (verdict "attributed")
    nearest: str | None  # nearest registered model within the report radius
    distance: int | None  # its Hamming distance
    matches: int | None  # L - distance
    bit_accuracy: float | None
    p_value: float  # one comparison, under the null model
    corrected_p_value: float  # min(1, N p): Bonferroni over the registry
    neg_log10_corrected_p: float
    within_radius: int  # registered fingerprints within the decision radius
    registry_size: int  # N, the fingerprints compared against
    confidence: float  # the decoder's confidence (ganprint.detection.confidence)
    reason: str
    bits: str

    def to_json(self) -> dict:
        return asdict(self)


class Attributor:
    """Attribute decoded bits to N registered fingerprints of one method and length.

    `confidence_threshold` (from a calibration) enables the "fingerprinted but unknown" verdict for
    confident decodings that match no registered fingerprint; without it that verdict is only given
    when several registered fingerprints match.
    """

    def __init__(
        self,
        models: Sequence[str],
        bits,
        false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
        null: NullModel | None = None,
        confidence_threshold: float | None = None,
        backend: str = "auto",
        threads: int | None = None,
    ):
        if not 0 < false_positive_rate <= 1:  # also refuses NaN
            raise GanprintError(f"the false-positive rate must be a number in (0, 1], got {false_positive_rate}")
        self.models = list(models)
        self.index = FingerprintIndex(bits, backend=backend, threads=threads)
        if len(self.models) != self.index.size:
            raise ValueError(f"{len(self.models)} model names for {self.index.size} fingerprints")
        self.length = self.index.length
        self.null = null or NullModel.fair(self.length)
        if self.null.length != self.length:
            raise ValueError(f"null model is for {self.null.length} bits, fingerprints have {self.length}")
        self.false_positive_rate = float(false_positive_rate)
        self.confidence_threshold = confidence_threshold
        n = max(1, self.index.size)
        # Bonferroni: one comparison must pass a / N; decision radius in bits
        self.match_threshold = self.null.threshold(self.false_positive_rate / n)
        self.decision_radius = self.length - self.match_threshold  # -1: no fingerprint can ever pass
        self.report_radius = max(self.decision_radius, self.length - self.null.threshold(1.0 / n))
        self._log_sf = np.array([self.null.log_sf(k) for k in range(self.length + 2)])
        self._log_n = math.log(n)

    @classmethod
    def from_registry(cls, registry: "Registry", method: str | None, length: int, **kwargs) -> "Attributor":
        models, bits = registry.fingerprint_bits(method, length)
        return cls(models, bits if len(models) else np.zeros((0, length), np.uint8), **kwargs)

    @property
    def registry_size(self) -> int:
        return self.index.size

    def corrected(self, matches: int) -> tuple[float, float, float]:
        """(p, min(1, N p), -log10 of the latter) for `matches` agreeing bits."""
        log_p = float(self._log_sf[min(max(matches, 0), self.length + 1)])
        log_corrected = min(0.0, log_p + self._log_n)
        return math.exp(log_p), math.exp(log_corrected), max(0.0, -log_corrected / _LN10)

    def attribute_logits(self, logits: torch.Tensor, names: Sequence[str] | None = None,
                         images: torch.Tensor | None = None,
                         is_palette: Callable[[int], bool] | None = None) -> list[Attribution]:  # fmt: skip
        """Verdicts from logits (N, L); `images` (N, 3, R, R), those the logits were read from, add the
        texture check (flat images: not-enough-signal) and the palette check. Every CLI path gives them.
        `is_palette(i)`: whether image i's file is palette-quantized (ganprint.texture.is_palette_image),
        asked only of images whose confidence alone would make them fingerprinted-unknown."""
        logits = torch.as_tensor(logits).detach().float().cpu()
        if logits.ndim != 2 or logits.shape[1] != self.length:
            raise ValueError(f"expected logits of shape (N, {self.length}), got {tuple(logits.shape)}")
        check_finite(logits)
        signal = ImageSignal.measure(images) if images is not None else None
        if signal is not None and len(signal) != logits.shape[0]:
            raise ValueError(f"{len(signal)} images for {logits.shape[0]} rows of logits")
        return self.attribute_bits((logits > 0).numpy(), confidence(logits).tolist(), names, signal, is_palette)

    def attribute_bits(self, bits, confidences: Sequence[float] | None = None, names: Sequence[str] | None = None,
                       signal: ImageSignal | None = None,
                       is_palette: Callable[[int], bool] | None = None) -> list[Attribution]:  # fmt: skip
        bits = np.asarray(bits.detach().cpu().numpy() if isinstance(bits, torch.Tensor) else bits) > 0.5
        hits = self.index.search(bits, self.report_radius)
        out = []
        enough = signal.enough if signal is not None else [True] * len(hits)
        for i, (dist, rows) in enumerate(hits):
            conf = float(confidences[i]) if confidences is not None else float("nan")
            name = names[i] if names is not None else str(i)
            if not enough[i]:  # the evidence is still shown, but no verdict is given
                result = self._verdict(name, bits[i], dist, rows, conf)
                result.verdict, result.model, result.reason = NOT_ENOUGH_SIGNAL, None, signal.reason(i)
            else:
                result = self._verdict(name, bits[i], dist, rows, conf, partial(_palette, signal, is_palette, i))
            out.append(result)
        return out

    def _verdict(self, name: str, bits: np.ndarray, dist: np.ndarray, rows: np.ndarray, conf: float,
                 palette: Callable[[], bool] = lambda: False) -> Attribution:  # fmt: skip
        within = int(np.sum(dist <= self.decision_radius))
        bit_string = "".join("1" if b else "0" for b in bits.tolist())
        if len(dist):
            d = int(dist[0])
            p, p_corr, nlp = self.corrected(self.length - d)
            nearest, matches, acc = self.models[int(rows[0])], self.length - d, (self.length - d) / self.length
        else:
            d = matches = acc = nearest = None
            p, p_corr, nlp = 1.0, 1.0, 0.0
        model = None
        if within == 1:
            verdict, model = ATTRIBUTED, nearest
            reason = f"{matches}/{self.length} bits match {nearest}; corrected p {p_corr:.2g} <= {self.false_positive_rate:g}"
        elif within > 1:
            verdict = UNKNOWN
            others = ", ".join(self.models[int(r)] for r in rows[:within][:3])
            reason = f"ambiguous: {within} registered fingerprints within {self.decision_radius} bits ({others})"
        elif self.confidence_threshold is not None and conf > self.confidence_threshold and not palette():
            verdict = UNKNOWN
            reason = (f"decoder confidence {conf:.3f} above the clean-image threshold {self.confidence_threshold:.3f}; "
                      "no registered fingerprint matches")  # fmt: skip
        else:
            verdict = NOT_FINGERPRINTED
            if self.registry_size == 0:
                reason = "no registered fingerprints to compare against"
            elif self.decision_radius < 0:
                reason = (f"{self.length} bits cannot reach corrected p <= {self.false_positive_rate:g} "
                          f"among {self.registry_size} fingerprints under this null")  # fmt: skip
            elif nearest is None:
                reason = f"no registered fingerprint within {self.report_radius} bits"
            else:
                reason = f"nearest {nearest} at {d} bits; corrected p {p_corr:.2g} > {self.false_positive_rate:g}"
            if self.confidence_threshold is None:
                reason += "; uncalibrated decoder: unregistered fingerprints cannot be recognised"
            elif conf > self.confidence_threshold:  # only palette images get here with such a confidence
                reason += (f"; confidence {conf:.3f} not used: a palette-quantized image (at most 256 colours), "
                           "whose dithering is outside the clean-image calibration")  # fmt: skip
        return Attribution(name, verdict, model, nearest, d, matches, acc, p, p_corr, nlp, within,
                           self.registry_size, conf, reason, bit_string)  # fmt: skip


def _palette(signal: ImageSignal | None, is_palette: Callable[[int], bool] | None, i: int) -> bool:
    """Whether image i is palette-quantized: by its file when `is_palette` can tell, else by the decoder's input."""
    if signal is not None and signal.palette[i]:
        return True
    return bool(is_palette(i)) if is_palette is not None else False


def summarize(results: Sequence[Attribution]) -> dict[str, int]:
    """Counts per verdict."""
    counts = {v: 0 for v in VERDICTS}
    for r in results:
        counts[r.verdict] += 1
    return counts


def attribute(
    images: torch.Tensor,
    registry: str | os.PathLike,
    model: str | os.PathLike | None = None,
    method: str = "codec",
    false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
    device: str = "auto",
    names: Sequence[str] | None = None,
) -> list[Attribution]:
    """The verb API: attribute a batch of images (N, 3, R, R) in [0, 1] to the models of a registry.

    `model` is the decoder (default: the shipped codec for method "codec"); its calibration.json is
    used when present, as `ganprint attribute` does.
    """
    from .calibration import load_calibration
    from .decoders import load_decoder
    from .registry import Registry

    decoder = load_decoder(model, method, device)
    cal = load_calibration(decoder)
    with Registry(registry) as reg:
        attributor = Attributor.from_registry(
            reg, method, decoder.fingerprint_length, false_positive_rate=false_positive_rate,
            null=cal.null_model() if cal else None, confidence_threshold=cal.confidence_threshold if cal else None,
        )  # fmt: skip
    images = torch.as_tensor(images).float()
    logits = decoder.decode_logits(images).detach().float().cpu()
    return attributor.attribute_logits(logits, names, images=images)
