"""Structured detection results: decoded bits, soft scores and, against a fingerprint, the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .stats import bit_accuracy, match_threshold, neg_log10_p_value, p_value

DEFAULT_FALSE_POSITIVE_RATE = 1e-6  # chance that a clean image is called fingerprinted


@dataclass
class DetectionResult:
    """What a decoder read from N images.

    `bits` are the hard decisions (logit > 0) and `logits` the soft scores, both (N, L). When an
    expected fingerprint was given, `bit_accuracy`, `p_value` and `neg_log10_p` hold one value per
    image, and `detected` is p_value <= false_positive_rate.
    """

    bits: torch.Tensor
    logits: torch.Tensor
    expected: torch.Tensor | None = None
    false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE
    bit_accuracy: torch.Tensor | None = None
    p_value: list[float] = field(default_factory=list)
    neg_log10_p: list[float] = field(default_factory=list)
    detected: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return self.bits.shape[0]

    @classmethod
    def from_logits(
        cls,
        logits: torch.Tensor,
        expected: torch.Tensor | None = None,
        false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
    ) -> "DetectionResult":
        logits = logits.detach().float().cpu()
        result = cls(bits=(logits > 0).float(), logits=logits, false_positive_rate=false_positive_rate)
        if expected is not None:
            result.compare(expected)
        return result

    def compare(self, expected: torch.Tensor) -> "DetectionResult":
        """Fill the per-image statistics against one fingerprint (L,) or one per image (N, L)."""
        expected = expected.detach().float().cpu()
        if expected.ndim == 1:
            expected = expected.expand_as(self.bits)
        if expected.shape != self.bits.shape:
            raise ValueError(f"expected fingerprints of shape {tuple(self.bits.shape)}, got {tuple(expected.shape)}")
        length = self.bits.shape[1]
        self.expected = expected
        self.bit_accuracy = bit_accuracy(self.bits, expected)
        matches = [round(a * length) for a in self.bit_accuracy.tolist()]
        self.p_value = [p_value(k, length) for k in matches]
        self.neg_log10_p = [neg_log10_p_value(k, length) for k in matches]
        threshold = match_threshold(length, self.false_positive_rate)
        self.detected = [k >= threshold for k in matches]
        return self
