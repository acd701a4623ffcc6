"""Calibration: what a decoder reads from clean images, and the thresholds that follow from it.

The fair-coin binomial p-value assumes that on an image without the fingerprint every decoded bit
matches with probability 1/2. A real decoder's bits on clean images may lean one way (bit i reads 1
on 90% of photos) or move together. `calibrate` runs the decoder over clean images and measures:

- per-bit bias: q_i, the rate of 1s (add-one smoothed). Against a fixed fingerprint bit i then
  matches with probability q_i or 1 - q_i, at most max(q_i, 1 - q_i). The *calibrated null*
  (ganprint.detection.NullModel.calibrated) uses these upper bounds: an exact Poisson-binomial tail
  that is conservative for every fingerprint. The report says how optimistic the fair-coin p-value
  would be at its own threshold ("optimism"), and warns when that is more than 10x.
- correlation: the largest eigenvalue of the bits' correlation matrix against the same for the bits
  with each column shuffled independently (which keeps the biases, removes the correlation). A ratio
  well above 1 means bits move together: the worst-aligned fingerprint's match count varies more
  than any independent-bit null assumes, so p-values for such fingerprints are optimistic (warning).
- empirical false-positive rate: every clean image against `fingerprints` random fingerprints (and
  the registered ones, if given), counted at the binomial and the calibrated thresholds.
- decoder confidence (ganprint.detection.confidence) on clean images: the "fingerprinted but
  unknown" verdict needs a confidence above `confidence_threshold`. The threshold is conformal: with
  n clean scores, an exchangeable clean image exceeds the (m+1)-th largest with probability at most
  (m+1)/(n+1); m is the largest with (m+1)/(n+1) <= the chosen rate, or 0 (threshold = the maximum,
  rate 1/(n+1)) when n is too small for the rate. That achieved rate is stored and reported.

The result is `calibration.json` beside the decoder's config.json; detect and attribute use it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from .data import open_source
from .decoders import Decoder
from .detection import DEFAULT_FALSE_POSITIVE_RATE, NullModel, confidence
from .errors import GanprintError
from .io import atomic_write_json
from .registry import now_utc

CALIBRATION_NAME = "calibration.json"
CALIBRATION_VERSION = 1
OPTIMISM_WARNING = 10.0  # warn when the fair-coin p-value is this many times too small
CORRELATION_WARNING = 1.5  # warn when the top correlation eigenvalue exceeds the shuffled one this much
MIN_IMAGES = 1000  # fewer clean images give a warning: biases and thresholds are rough


@dataclass
class Calibration:
    """A decoder's behaviour on clean images (see the module docstring)."""

    method: str
    decoder: str
    weights_sha256: str | None
    length: int
    resolution: int
    images: int
    source: str
    one_rate: list[float]  # add-one smoothed P(bit = 1) on clean images
    false_positive_rate: float  # the rate the thresholds below are reported at
    binomial_threshold: int  # matching bits needed at that rate, fair coins
    calibrated_threshold: int  # the same under the calibrated null
    optimism: float  # calibrated p / binomial p at the binomial threshold
    correlation_eigenvalue: float
    correlation_eigenvalue_shuffled: float
    empirical: dict  # comparisons and exceedances at both thresholds
    confidence_threshold: float
    unknown_false_positive_rate: float  # conformal bound of the "fingerprinted but unknown" verdict
    confidence_quantiles: dict
    warnings: list[str] = field(default_factory=list)
    created: str = ""
    version: int = CALIBRATION_VERSION

    @property
    def match_probabilities(self) -> list[float]:
        return [max(q, 1.0 - q) for q in self.one_rate]

    def null_model(self) -> NullModel:
        return NullModel.calibrated(self.match_probabilities, f"calibrated on {self.images} clean images")

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        path = Path(path)
        if path.exists() and not overwrite:
            raise GanprintError(f"{path} already exists; pass --overwrite to replace it")
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        path = Path(path)
        if not path.is_file():
            raise GanprintError(f"{path}: calibration file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise GanprintError(f"{path}: not valid JSON ({e.__class__.__name__})") from None
        if not isinstance(data, dict) or data.get("version") != CALIBRATION_VERSION:
            raise GanprintError(f"{path}: not a ganprint calibration (version {CALIBRATION_VERSION})")
        names = {f for f in cls.__dataclass_fields__}
        missing = sorted(names - set(data) - {"warnings", "created", "version"})
        if missing:
            raise GanprintError(f"{path}: calibration lacks {missing[0]!r}")
        calibration = cls(**{k: v for k, v in data.items() if k in names})
        rates = calibration.one_rate
        if (not isinstance(rates, list) or len(rates) != calibration.length
                or not all(isinstance(q, (int, float)) and 0 < q < 1 for q in rates)):  # fmt: skip
            raise GanprintError(f"{path}: one_rate must hold {calibration.length} numbers in (0, 1)")
        return calibration


# ---------------------------------------------------------------------------------- computing
def _conformal_threshold(scores: np.ndarray, rate: float) -> tuple[float, float]:
    """(threshold, achieved rate): a clean score exceeds the threshold with probability <= rate."""
    n = len(scores)
    m = max(0, math.floor(rate * (n + 1)) - 1)  # clean scores allowed at or above a claimed score
    m = min(m, n - 1)
    return float(np.sort(scores)[::-1][m]), (m + 1) / (n + 1)


def _top_correlation_eigenvalue(bits: np.ndarray) -> float:
    varying = bits[:, bits.std(axis=0) > 0]
    if varying.shape[1] < 2:
        return 1.0
    corr = np.corrcoef(varying, rowvar=False)
    return float(np.linalg.eigvalsh(np.nan_to_num(corr))[-1])


def calibrate_logits(
    logits: torch.Tensor,
    false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
    unknown_false_positive_rate: float | None = None,
    fingerprints: int = 1000,
    registered: np.ndarray | None = None,
    seed: int = 0,
    **describe,
) -> Calibration:
    """Calibrate from a decoder's logits (n, L) on clean images. `describe` fills method, decoder,
    weights_sha256, resolution and source."""
    logits = torch.as_tensor(logits).detach().float().cpu()
    if logits.ndim != 2 or logits.shape[0] < 2:
        raise GanprintError("calibration needs the logits of at least 2 clean images")
    n, length = logits.shape
    bits = (logits > 0).numpy().astype(np.uint8)
    one_rate = (bits.sum(axis=0) + 1.0) / (n + 2.0)
    null = NullModel.calibrated(np.maximum(one_rate, 1 - one_rate))
    fair = NullModel.fair(length)
    k_binomial = fair.threshold(false_positive_rate)
    k_calibrated = null.threshold(false_positive_rate)
    optimism = math.exp(null.log_sf(k_binomial) - fair.log_sf(k_binomial)) if k_binomial <= length else 1.0

    rng = np.random.default_rng(seed)
    shuffled = np.stack([rng.permutation(column) for column in bits.T], axis=1)
    eig, eig_shuffled = _top_correlation_eigenvalue(bits), _top_correlation_eigenvalue(shuffled)

    from .attribution import hamming, pack_bits

    tests = rng.integers(0, 2, size=(fingerprints, length), dtype=np.uint8)
    if registered is not None and len(registered):
        tests = np.concatenate([tests, np.asarray(registered, dtype=np.uint8)])
    packed_tests, packed_bits = pack_bits(tests), pack_bits(bits)
    above_binomial = above_calibrated = 0
    for start in range(0, n, 4096):
        matches = length - hamming(packed_bits[start : start + 4096], packed_tests)
        above_binomial += int((matches >= k_binomial).sum())
        above_calibrated += int((matches >= k_calibrated).sum())
    comparisons = n * len(tests)
    empirical = {
        "fingerprints": len(tests),
        "registered_fingerprints": 0 if registered is None else len(registered),
        "comparisons": comparisons,
        "above_binomial_threshold": above_binomial,
        "above_calibrated_threshold": above_calibrated,
        # one-sided 95% upper bound on the rate (rule of three when nothing was seen)
        "rate_upper_95_binomial": _upper95(above_binomial, comparisons),
        "rate_upper_95_calibrated": _upper95(above_calibrated, comparisons),
    }

    scores = confidence(logits).numpy()
    rate = false_positive_rate if unknown_false_positive_rate is None else unknown_false_positive_rate
    threshold, achieved = _conformal_threshold(scores, rate)
    quantiles = {q: float(np.quantile(scores, float(q))) for q in ("0.5", "0.9", "0.99", "1.0")}

    warnings = []
    if n < MIN_IMAGES:
        warnings.append(f"only {n} clean images: per-bit rates are rough and the unknown-verdict rate is "
                        f"{achieved:.2g}; use {MIN_IMAGES} or more")  # fmt: skip
    if optimism > OPTIMISM_WARNING:
        worst = int(np.argmax(np.abs(one_rate - 0.5)))
        warnings.append(
            f"decoder bits on clean images are biased (bit {worst} reads 1 on {one_rate[worst]:.0%} of them): "
            f"at {k_binomial}/{length} matching bits the fair-coin p-value is {optimism:.3g}x optimistic; "
            f"the calibrated threshold is {k_calibrated}/{length}"
        )
    if eig > CORRELATION_WARNING * eig_shuffled:
        warnings.append(
            f"decoder bits on clean images are correlated (top correlation eigenvalue {eig:.2f}, "
            f"{eig_shuffled:.2f} for shuffled bits): p-values assume independent bits and are optimistic "
            "for fingerprints aligned with the correlation"
        )
    if above_calibrated > max(3.0, 10 * false_positive_rate * comparisons):
        warnings.append(f"{above_calibrated} of {comparisons} clean comparisons pass the calibrated threshold, "
                        f"far above the {false_positive_rate:g} rate")  # fmt: skip
    return Calibration(
        method=describe.get("method", "codec"),
        decoder=describe.get("decoder", ""),
        weights_sha256=describe.get("weights_sha256"),
        length=length,
        resolution=int(describe.get("resolution", 0)),
        images=n,
        source=describe.get("source", ""),
        one_rate=[float(q) for q in one_rate],
        false_positive_rate=false_positive_rate,
        binomial_threshold=k_binomial,
        calibrated_threshold=k_calibrated,
        optimism=optimism,
        correlation_eigenvalue=eig,
        correlation_eigenvalue_shuffled=eig_shuffled,
        empirical=empirical,
        confidence_threshold=threshold,
        unknown_false_positive_rate=achieved,
        confidence_quantiles=quantiles,
        warnings=warnings,
        created=now_utc(),
    )


def _upper95(count: int, total: int) -> float:
    """One-sided 95% upper confidence bound of a rate (exact Clopper-Pearson, by bisection)."""
    if total == 0:
        return 1.0
    if count >= total:
        return 1.0
    from .stats import binomial_sf

    lo, hi = count / total, 1.0
    for _ in range(100):  # P[Bin(total, p) <= count] = 0.05
        mid = (lo + hi) / 2
        if 1.0 - binomial_sf(count + 1, total, mid) > 0.05:
            lo = mid
        else:
            hi = mid
    return hi


def calibrate_decoder(
    decoder: Decoder,
    data: str | os.PathLike,
    false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
    unknown_false_positive_rate: float | None = None,
    batch_size: int = 64,
    celeba: bool = False,
    strict: bool = False,
    fingerprints: int = 1000,
    registered: np.ndarray | None = None,
    seed: int = 0,
    progress: bool = True,
    on_bad: Callable[[str, str], None] | None = None,
) -> Calibration:
    """Run `decoder` over every clean image in `data` (any source) and calibrate."""
    source = open_source(data)
    chunks = []
    bar = tqdm(total=len(source), desc="calibrate", unit="img", disable=not progress, dynamic_ncols=True)
    for names, logits in decoder.decode_source(source, batch_size, celeba=celeba, strict=strict, on_bad=on_bad):
        chunks.append(logits)
        bar.update(len(names))
    bar.close()
    return calibrate_logits(
        torch.cat(chunks), false_positive_rate, unknown_false_positive_rate, fingerprints, registered, seed,
        method=decoder.method, decoder=decoder.name, weights_sha256=decoder.weights_sha256(),
        resolution=decoder.resolution, source=os.fspath(data),
    )  # fmt: skip


# ------------------------------------------------------------------------------------- finding
def calibration_path(decoder: Decoder) -> Path | None:
    """Where a decoder's calibration lives: beside config.json, or `<weights>.calibration.json`."""
    if decoder.model_dir is not None:
        return Path(decoder.model_dir) / CALIBRATION_NAME
    if decoder.weights_file is not None:
        return Path(decoder.weights_file).with_suffix(".calibration.json")
    return None


def load_calibration(decoder: Decoder, path: str | os.PathLike | None = None) -> Calibration | None:
    """The decoder's calibration: from `path`, or its default place when present (None if absent).

    A calibration of other weights or another length is an error, never silently used or ignored.
    """
    explicit = path is not None
    path = Path(path) if explicit else calibration_path(decoder)
    if path is None or (not explicit and not path.is_file()):
        return None
    calibration = Calibration.load(path)
    if calibration.length != decoder.fingerprint_length or calibration.method != decoder.method:
        raise GanprintError(
            f"{path}: calibration is for a {calibration.length}-bit {calibration.method} decoder, not this "
            f"{decoder.fingerprint_length}-bit {decoder.method} one"
        )
    sha = decoder.weights_sha256()
    if calibration.weights_sha256 and sha and calibration.weights_sha256 != sha:
        raise GanprintError(
            f"{path}: made for other weights than {decoder.name}'s; run 'ganprint calibrate' again "
            "(or delete the file)"
        )
    return calibration
