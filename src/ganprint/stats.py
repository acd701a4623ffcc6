"""Statistics of decoded bits against an expected fingerprint.

Under the null hypothesis "this image does not carry the fingerprint", each decoded bit matches the
expected bit with probability 1/2, so k matches of L bits have p-value P[Bin(L, 1/2) >= k].
Tails are summed exactly in log space, so p-values far below the smallest float keep a finite
-log10, and long pooled tests (millions of bits) stop summing once terms no longer matter.
"""

from __future__ import annotations

import math

import torch


def bit_accuracy(decoded: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Fraction of matching bits per row; decoded and expected are 0/1 tensors of shape (N, L) or (L,)."""
    return ((decoded > 0.5) == (expected > 0.5)).float().mean(dim=-1)


def _log_pmf(i: int, n: int, log_p: float, log_q: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q


def _log_sum_from(start: int, stop: int, stride: int, n: int, log_p: float, log_q: float) -> float:
    """log of sum of pmf(i) for i = start, start+stride, ... (not reaching stop), walking away from the
    mode so terms only shrink; stops once they fall 40 orders below the first."""
    first = _log_pmf(start, n, log_p, log_q)
    total, i = 1.0, start + stride
    while i != stop:
        rel = _log_pmf(i, n, log_p, log_q) - first
        if rel < -92:  # e^-92 ~ 1e-40: nothing left that changes a double
            break
        total += math.exp(rel)
        i += stride
    return first + math.log(total)


def log_binomial_sf(k: int, n: int, p: float = 0.5) -> float:
    """Natural log of P[Bin(n, p) >= k]."""
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    log_p, log_q = math.log(p), math.log1p(-p)
    if k > n * p:  # upper tail: terms shrink as i grows
        return _log_sum_from(k, n + 1, 1, n, log_p, log_q)
    # below the mean: 1 - P[X <= k-1], the lower tail shrinking as i falls
    lower = _log_sum_from(k - 1, -1, -1, n, log_p, log_q)
    return math.log1p(-min(1.0, math.exp(lower)))


def binomial_sf(k: int, n: int, p: float = 0.5) -> float:
    """P[Bin(n, p) >= k]."""
    return math.exp(log_binomial_sf(int(k), int(n), p))


def p_value(matches: int, length: int) -> float:
    """One-sided binomial p-value of `matches` agreeing bits out of `length` under fair coins."""
    return binomial_sf(int(matches), int(length))


def neg_log10_p_value(matches: int, length: int) -> float:
    """-log10 of the p-value, finite even where the p-value underflows a float."""
    return max(0.0, -log_binomial_sf(int(matches), int(length)) / math.log(10))


def match_threshold(length: int, false_positive_rate: float) -> int:
    """Smallest number of matching bits k whose p-value is <= false_positive_rate (length+1 if none)."""
    target = math.log(false_positive_rate) if false_positive_rate > 0 else -math.inf
    lo, hi = 0, length + 1  # p-values fall as k grows: binary search
    while lo < hi:
        mid = (lo + hi) // 2
        if log_binomial_sf(mid, length) <= target:
            hi = mid
        else:
            lo = mid + 1
    return lo
