from math import comb

import pytest
import torch

from ganprint.stats import binomial_sf, bit_accuracy, match_threshold, neg_log10_p_value, p_value


def exact_tail(k, n):
    return sum(comb(n, i) for i in range(max(k, 0), n + 1)) / 2**n


@pytest.mark.parametrize("n", [1, 2, 7, 48, 100, 128])
def test_p_value_equals_exact_binomial_tail(n):
    for k in range(0, n + 2):
        want = exact_tail(k, n) if k <= n else 0.0
        got = p_value(k, n)
        assert got == pytest.approx(want, rel=1e-10, abs=1e-300)


def test_methods_reference_points():
    # methods.md: for L=100, 0.59 gives p < 0.05, 0.74 gives p < 1e-6, 0.80 gives p < 1e-9
    assert p_value(59, 100) < 0.05 < p_value(58, 100)
    assert p_value(74, 100) < 1e-6 < p_value(73, 100)
    assert p_value(80, 100) < 1e-9


def test_neg_log10_is_finite_beyond_float_range():
    # 10 million bits all matching: p = 2^-1e7, far below the smallest double
    assert p_value(10_000_000, 10_000_000) == 0.0
    assert neg_log10_p_value(10_000_000, 10_000_000) == pytest.approx(1e7 * 0.30103, rel=1e-6)
    assert neg_log10_p_value(100, 100) == pytest.approx(100 * 0.30103, rel=1e-6)


def test_pooled_tail_below_and_above_mean():
    assert binomial_sf(0, 1000) == 1.0
    assert binomial_sf(500, 1000) == pytest.approx(0.5126125, rel=1e-6)
    assert binomial_sf(400, 1000) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("n,fpr", [(100, 1e-6), (128, 1e-6), (48, 0.01), (16, 1e-3)])
def test_match_threshold_is_smallest_passing_count(n, fpr):
    k = match_threshold(n, fpr)
    assert p_value(k, n) <= fpr
    assert k == 0 or p_value(k - 1, n) > fpr


def test_match_threshold_unreachable():
    assert match_threshold(8, 1e-6) == 9  # 8 bits can never reach p <= 1e-6


def test_bit_accuracy_rows():
    a = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0]]).float()
    b = torch.tensor([1, 0, 0, 1]).float()
    assert bit_accuracy(a, b).tolist() == [0.75, 0.5]
