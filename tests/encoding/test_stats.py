"""Permutation p-values are uniform under the null, small for real effects; BH controls the FDR."""

import numpy as np
import pytest
from scipy.stats import kstest

from neurodec.encoding import fdr_correction, permutation_test


def test_permutation_pvalues_uniform_under_null(rng):
    y = rng.standard_normal((40, 400))
    p = rng.standard_normal((40, 400))
    result = permutation_test(y, p, n_permutations=199, random_state=1)
    assert result.p_values.min() >= 1 / 200  # the +1 correction
    assert kstest(result.p_values, "uniform").pvalue > 0.01
    assert abs(np.mean(result.p_values < 0.05) - 0.05) < 0.03


def test_permutation_detects_signal_and_matches_null(rng):
    y = rng.standard_normal((60, 5))
    p = y + rng.standard_normal((60, 5))
    result = permutation_test(y, p, n_permutations=99, random_state=0, return_null=True)
    np.testing.assert_allclose(result.p_values, 0.01)
    expected = (1 + (result.null >= result.observed).sum(axis=0)) / 100
    np.testing.assert_allclose(result.p_values, expected)


def test_block_permutation_keeps_blocks_and_is_uniform(rng):
    # Autocorrelated series: whole-sample shuffling would give anti-conservative p-values.
    n, t = 200, 300
    kernel = np.ones(10) / 10
    smooth = lambda x: np.apply_along_axis(lambda c: np.convolve(c, kernel, "same"), 0, x)  # noqa: E731
    y, p = smooth(rng.standard_normal((n, t))), smooth(rng.standard_normal((n, t)))
    blocked = permutation_test(y, p, n_permutations=99, block_size=20, random_state=0)
    naive = permutation_test(y, p, n_permutations=99, random_state=0)
    assert np.mean(blocked.p_values < 0.05) < 0.1
    assert np.mean(naive.p_values < 0.05) > np.mean(blocked.p_values < 0.05)
    with pytest.raises(ValueError, match="block_size"):
        permutation_test(y, p, block_size=n)


def test_fdr_matches_bh_definition_and_controls_rate(rng):
    fdp = []
    for rep in range(20):
        null_p = rng.uniform(size=900)
        alt_p = rng.beta(0.05, 5, size=100)
        p = np.concatenate([alt_p, null_p])
        rejected, q = fdr_correction(p, alpha=0.1)
        # BH by definition: reject the k smallest where k = max{i: p_(i) <= i * alpha / m}.
        order = np.sort(p)
        below = np.flatnonzero(order <= np.arange(1, p.size + 1) * 0.1 / p.size)
        k = below.max() + 1 if below.size else 0
        assert rejected.sum() == k
        fdp.append(rejected[100:].sum() / max(rejected.sum(), 1))
    assert np.mean(fdp) <= 0.1 + 0.03


def test_fdr_leaves_nan_out():
    rejected, q = fdr_correction(np.array([0.001, np.nan, 0.5]))
    assert np.isnan(q[1]) and not rejected[1] and rejected[0]
    np.testing.assert_allclose(q[[0, 2]], [0.002, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fdr_correction(np.array([1.5]))
