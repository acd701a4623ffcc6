"""The detection core shared by every fingerprinting method: decoded bits -> statistics -> verdict.

Input is what any decoder produces: bit logits (N, L), bit = logit > 0. Against an expected
fingerprint, the number of matching bits k is tested against a null model, the distribution of k on
images that do not carry the fingerprint:

- `NullModel.fair(L)`: each bit matches with probability 1/2, k ~ Bin(L, 1/2); the p-value is the
  exact one-sided tail P[Bin(L, 1/2) >= k] (ganprint.stats).
- `NullModel.calibrated(...)`: made by `ganprint calibrate` from a decoder's bits on clean images.
  Bit i matches with probability at most max(q_i, 1 - q_i), q_i the rate of 1s on clean images, so k
  is bounded by a Poisson-binomial variable whose exact tail is the (conservative) p-value. A decoder
  whose clean bits lean one way can no longer make the fair-coin p-value optimistic.

An image is `detected` when its p-value is at most the false-positive rate (default 1e-6: about one
clean image in a million is called fingerprinted), i.e. when k reaches `null.threshold(rate)`.

Given the images too, an image without enough texture (ganprint.texture) gets no verdict: it is
"not-enough-signal", never detected. Non-finite logits are an error (a broken model), never bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np
import torch

from .errors import GanprintError
from .stats import bit_accuracy, log_binomial_sf, match_threshold
from .texture import ImageSignal

DEFAULT_FALSE_POSITIVE_RATE = 1e-6  # chance that a clean image is called fingerprinted
DETECTED, NOT_DETECTED, UNDECIDED = "detected", "not-detected", "not-enough-signal"
_LN10 = math.log(10)


def _poisson_binomial_log_sf(probabilities: Sequence[float]) -> np.ndarray:
    """log P[X >= k] for k = 0..L+1 where X is a sum of independent Bernoulli(p_i): exact, in log space."""
    probs = np.asarray(probabilities, dtype=np.float64)
    length = len(probs)
    log_pmf = np.full(length + 1, -np.inf)
    log_pmf[0] = 0.0
    with np.errstate(divide="ignore"):  # p = 0 or 1 give log 0 = -inf, which logaddexp handles
        log_p, log_q = np.log(probs), np.log1p(-probs)
    for i in range(length):  # add one Bernoulli at a time: pmf'(k) = pmf(k) q + pmf(k-1) p
        head = log_pmf[: i + 2]
        shifted = np.concatenate(([-np.inf], log_pmf[: i + 1]))
        log_pmf[: i + 2] = np.logaddexp(head + log_q[i], shifted + log_p[i])
    tail = np.logaddexp.accumulate(log_pmf[::-1])[::-1]
    return np.minimum(np.append(tail, -np.inf), 0.0)


@dataclass(frozen=True)
class NullModel:
    """Distribution of the number of matching bits on an image without the fingerprint.

    `match_probabilities` None means fair coins; otherwise one upper bound per bit (calibrated).
    """

    length: int
    match_probabilities: tuple[float, ...] | None = None
    description: str = "fair coins (binomial)"
    _log_tail: np.ndarray | None = field(default=None, repr=False, compare=False, hash=False)

    @classmethod
    def fair(cls, length: int) -> "NullModel":
        return cls(int(length))

    @classmethod
    def calibrated(cls, match_probabilities: Sequence[float], description: str = "calibrated") -> "NullModel":
        probs = tuple(float(p) for p in match_probabilities)
        if not probs or any(not (0.0 <= p <= 1.0) for p in probs):
            raise ValueError("match probabilities must be in [0, 1]")
        model = cls(len(probs), probs, description)
        object.__setattr__(model, "_log_tail", _poisson_binomial_log_sf(probs))
        return model

    @property
    def is_fair(self) -> bool:
        return self.match_probabilities is None

    def log_sf(self, matches: int) -> float:
        """Natural log of the p-value of `matches` agreeing bits."""
        k = int(matches)
        if self._log_tail is None:
            return log_binomial_sf(k, self.length)
        return 0.0 if k <= 0 else float(self._log_tail[min(k, self.length + 1)])

    def p_value(self, matches: int) -> float:
        return math.exp(self.log_sf(matches))

    def neg_log10_p(self, matches: int) -> float:
        """-log10 of the p-value, finite where the p-value underflows a float."""
        return max(0.0, -self.log_sf(matches) / _LN10)

    def threshold(self, false_positive_rate: float) -> int:
        """Smallest number of matches whose p-value is <= false_positive_rate (length + 1 if none)."""
        if self._log_tail is None:
            return match_threshold(self.length, false_positive_rate)
        target = math.log(false_positive_rate) if false_positive_rate > 0 else -math.inf
        passing = np.nonzero(self._log_tail <= target)[0]
        return int(passing[0]) if len(passing) else self.length + 1


def check_finite(values: torch.Tensor, what: str = "the decoder") -> None:
    """NaN or infinite outputs come from a broken model or input, and are no evidence of anything."""
    finite = torch.isfinite(values.detach())
    if not bool(finite.all()):
        rows = int((~finite.reshape(finite.shape[0], -1).all(dim=1)).sum()) if finite.ndim else 1
        raise GanprintError(
            f"{what} produced NaN or infinite outputs for {rows} image(s); the model is broken or the input is "
            f"out of range, so no verdict can be given"
        )


def confidence(logits: torch.Tensor) -> torch.Tensor:
    """Per image, how sure the decoder is of its *least certain* bits, in [0, 1]: the mean of
    tanh(|logit| / 2) = |2 sigmoid(logit) - 1| over the lowest tenth of the bits (at least one).

    A fingerprinted image has every bit decoded with confidence; a clean image, even one on which
    the decoder is sure of many bits, rarely of all. The statistic behind the "fingerprinted but
    unknown" verdict (see ganprint.calibration); bounded, so no single logit dominates it.
    """
    per_bit = torch.tanh(logits.detach().float().abs() / 2)
    lowest = max(1, math.ceil(per_bit.shape[-1] / 10))
    return per_bit.topk(lowest, dim=-1, largest=False).values.mean(dim=-1)


@dataclass
class DetectionResult:
    """What a decoder read from N images.

    `bits` are the hard decisions (logit > 0), `logits` the soft scores and `probabilities` their
    sigmoid, all (N, L); `confidence` is one score per image (see `confidence`). When an expected
    fingerprint was given, `matches`, `bit_accuracy`, `p_value` and `neg_log10_p` hold one value per
    image under `null`, and `detected` is p_value <= false_positive_rate (matches >= `threshold`).
    `signal` (when the images were given) measures their texture; an image without enough of it is
    never detected and its verdict is "not-enough-signal".
    """

    bits: torch.Tensor
    logits: torch.Tensor
    expected: torch.Tensor | None = None
    false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE
    bit_accuracy: torch.Tensor | None = None
    p_value: list[float] = field(default_factory=list)
    neg_log10_p: list[float] = field(default_factory=list)
    detected: list[bool] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    null: NullModel | None = None
    threshold: int | None = None
    confidence: torch.Tensor | None = None
    signal: ImageSignal | None = None

    def __len__(self) -> int:
        return self.bits.shape[0]

    @property
    def probabilities(self) -> torch.Tensor:
        """P(bit = 1) per bit, the sigmoid of the logits."""
        return torch.sigmoid(self.logits)

    @classmethod
    def from_logits(
        cls,
        logits: torch.Tensor,
        expected: torch.Tensor | None = None,
        false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
        null: NullModel | None = None,
        images: torch.Tensor | None = None,
    ) -> "DetectionResult":
        """`images`: the (N, 3, R, R) images the logits were read from, for the texture check."""
        logits = logits.detach().float().cpu()
        if logits.ndim != 2:
            raise ValueError(f"expected logits of shape (N, L), got {tuple(logits.shape)}")
        check_finite(logits)
        signal = ImageSignal.measure(images) if images is not None else None
        if signal is not None and len(signal) != logits.shape[0]:
            raise ValueError(f"{len(signal)} images for {logits.shape[0]} rows of logits")
        if null is not None and null.length != logits.shape[1]:
            raise ValueError(f"null model is for {null.length} bits, the logits have {logits.shape[1]}")
        result = cls(
            bits=(logits > 0).float(),
            logits=logits,
            false_positive_rate=false_positive_rate,
            null=null or NullModel.fair(logits.shape[1]),
            confidence=confidence(logits),
            signal=signal,
        )
        if expected is not None:
            result.compare(expected)
        return result

    def compare(self, expected: torch.Tensor) -> "DetectionResult":
        """Fill the per-image statistics against one fingerprint (L,) or one per image (N, L)."""
        expected = torch.as_tensor(expected).detach().float().cpu()
        if expected.ndim == 1:
            expected = expected.expand_as(self.bits)
        if expected.shape != self.bits.shape:
            raise ValueError(f"expected fingerprints of shape {tuple(self.bits.shape)}, got {tuple(expected.shape)}")
        length = self.bits.shape[1]
        null = self.null or NullModel.fair(length)
        self.null = null
        self.expected = expected
        self.bit_accuracy = bit_accuracy(self.bits, expected)
        self.matches = ((self.bits > 0.5) == (expected > 0.5)).sum(dim=1).tolist()
        self.p_value = [null.p_value(k) for k in self.matches]
        self.neg_log10_p = [null.neg_log10_p(k) for k in self.matches]
        self.threshold = null.threshold(self.false_positive_rate)
        enough = self.enough_signal
        self.detected = [k >= self.threshold and ok for k, ok in zip(self.matches, enough)]
        return self

    @cached_property
    def enough_signal(self) -> list[bool]:
        """Per image, whether it has enough texture for a verdict (True when the images were not given)."""
        return self.signal.enough if self.signal is not None else [True] * len(self)

    @property
    def undecided(self) -> int:
        """Images without enough signal to decide."""
        return self.enough_signal.count(False)

    def verdict(self, i: int) -> str | None:
        """"detected", "not-detected" or "not-enough-signal" for image i (None without an expected fingerprint)."""
        if not self.enough_signal[i]:
            return UNDECIDED
        if self.expected is None:
            return None
        return DETECTED if self.detected[i] else NOT_DETECTED

    def reason(self, i: int) -> str | None:
        """Why image i has no verdict, or None when it has one."""
        return self.signal.reason(i) if not self.enough_signal[i] else None

    def records(self, names: Sequence[str] | None = None) -> list[dict]:
        """One JSON-ready dict per image (bits as a 0/1 string)."""
        out = []
        for i in range(len(self)):
            row = {"name": names[i] if names is not None else i}
            row["bits"] = "".join("1" if v > 0.5 else "0" for v in self.bits[i].tolist())
            row["confidence"] = float(self.confidence[i]) if self.confidence is not None else None
            row["verdict"] = self.verdict(i)
            if self.signal is not None:
                row["texture"] = float(self.signal.texture[i])
                if not self.enough_signal[i]:
                    row["reason"] = self.reason(i)
            if self.expected is not None:
                row.update(matches=self.matches[i], bit_accuracy=float(self.bit_accuracy[i]),
                           p_value=self.p_value[i], neg_log10_p=self.neg_log10_p[i],
                           detected=bool(self.detected[i]))  # fmt: skip
            out.append(row)
        return out
