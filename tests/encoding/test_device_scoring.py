"""EncodingModel.score on its torch device: the numbers of the numpy functions, and one host copy per call."""

import dataclasses

import numpy as np
import pytest
import torch

from encoding_simulation import simulate
from float32_tolerance import float32_atol, float32_rtol
from neurodec.encoding import EncodingModel, compute_noise_ceiling, pearson_r, permutation_test, r2_score
from neurodec.encoding.bootstrap import bootstrap_counts, bootstrap_scores
from neurodec.ridge.banded import r2_score_split

ALPHAS = np.logspace(-1, 6, 8)
# The device path and the reference differ only in float32 summation order of the predictions
# (other column blocks of the same GEMM): sums over the 20 features of standardized data, then
# float64 sums over the 40 test stimuli.
N_TERMS = 20 + 40
RTOL, ATOL = float32_rtol(N_TERMS), float32_atol(N_TERMS)
N_PERMUTATIONS = 99


@pytest.fixture(scope="module")
def fitted():
    features, responses, _ = simulate(np.random.default_rng(11), n_per_area=10)
    # Without the ncsnr column the noise ceiling is estimated from the test repeats, block by block.
    responses = dataclasses.replace(responses, units=responses.units.drop(columns="ncsnr"))
    spaces = [features["A"], features["B"]]
    model = EncodingModel(alphas=ALPHAS, device=torch.device("cpu"), banded=True, n_iter=5, random_state=0,
                          n_targets_batch=7, warn_alpha_edge=False).fit(spaces, responses)
    return spaces, responses, model


def _numpy_noise_ceiling(responses):
    """The numpy estimate (Allen et al. 2022) the device code replaced: z-score, pooled within-stimulus variance."""
    test = responses.split("test")
    codes = np.unique(test.trials["stimulus_id"], return_inverse=True)[1]
    counts = np.bincount(codes).astype(np.float64)
    z = (test.data - test.data.mean(axis=0)) / test.data.std(axis=0)
    means = np.zeros((len(counts), z.shape[1]))
    np.add.at(means, codes, z)
    means /= counts[:, None]
    noise_var = ((z - means[codes]) ** 2).sum(axis=0) / (counts - 1).sum()
    ncsnr_sq = np.clip(1 - noise_var, 0, None) / noise_var
    return ncsnr_sq / (ncsnr_sq + np.mean(1 / counts))


def test_device_scores_equal_the_numpy_functions(fitted):
    spaces, responses, model = fitted
    scores = model.score(spaces, responses, n_permutations=N_PERMUTATIONS, random_state=5, n_bootstraps=64)
    test = responses.split("test").average_repeats()
    y = test.data.astype(np.float64)
    prediction = model.predict(spaces, stimulus_ids=test.stimulus_ids)
    np.testing.assert_allclose(scores.r, pearson_r(y, prediction), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(scores.r2, r2_score(y, prediction), rtol=RTOL, atol=ATOL)
    nc = _numpy_noise_ceiling(responses)
    np.testing.assert_allclose(scores.noise_ceiling, nc, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(compute_noise_ceiling(responses), nc, rtol=RTOL, atol=ATOL)
    assert np.nanmin(nc) > 0.05  # a test that can fail: every simulated unit has repeatable responses
    np.testing.assert_allclose(scores.r2_normalized, r2_score(y, prediction) / nc, rtol=RTOL, atol=ATOL)
    # Same seed, same permutations: a permuted r within rounding error of the observed one may count
    # on either side, so p-values may differ by one permutation's share, nothing more.
    reference = permutation_test(y, prediction, n_permutations=N_PERMUTATIONS, random_state=5, device="cpu")
    np.testing.assert_allclose(scores.p_values, reference.p_values, atol=1 / (N_PERMUTATIONS + 1) + ATOL)
    assert np.mean(scores.p_values == reference.p_values) >= 0.9
    bands = model.predict(spaces, stimulus_ids=test.stimulus_ids, split=True) - model.intercept_ / 2
    np.testing.assert_allclose(scores.split_r2, r2_score_split(y - model.intercept_, bands), rtol=RTOL, atol=ATOL)
    r_boot, r2_boot = bootstrap_scores(y, prediction, bootstrap_counts(len(y), 64, 0))
    np.testing.assert_allclose(scores.bootstrap.distribution("r", "", "all"), r_boot.mean(axis=1),
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(scores.bootstrap.distribution("r2_normalized", "", "all"),
                               (r2_boot / nc).mean(axis=1), rtol=RTOL, atol=ATOL)
    # Planted signal: the units driven by the fitted spaces are predicted, those driven by "hidden" not.
    assert np.median(scores.r[:20]) > 0.5 > np.median(scores.r[20:]) + 0.3
    assert (scores.p_values[:20] <= 0.05).all()


def _count_host_copies(monkeypatch):
    """Count every Python-level way a tensor's values reach the host (works on CPU tensors too)."""
    import neurodec.ridge._batching as batching

    calls = {"n": 0}

    def counted(original):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            return original(*args, **kwargs)

        return wrapper

    for name in ("cpu", "numpy", "item", "tolist", "__array__", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, counted(getattr(torch.Tensor, name)))
    monkeypatch.setattr(batching, "to_host", counted(batching.to_host))
    return calls


@pytest.mark.parametrize("n_bootstraps", [0, 16])
def test_host_copies_do_not_grow_with_the_number_of_blocks(fitted, monkeypatch, n_bootstraps):
    spaces, responses, model = fitted
    calls = _count_host_copies(monkeypatch)
    counts, blocks = {}, {}
    for batch in (30, 3):
        model.set_params(n_targets_batch=batch)
        blocks[batch] = -(-responses.n_units // batch)
        before = calls["n"]
        model.score(spaces, responses, n_permutations=19, random_state=0, n_bootstraps=n_bootstraps)
        model.predict(spaces)
        counts[batch] = calls["n"] - before
    model.set_params(n_targets_batch=7)
    assert blocks[3] == 10 * blocks[30]
    # One copy of the scores (plus one of the bootstrap sums) and one of the predictions, however many blocks.
    assert counts[3] == counts[30] > 0


def test_bad_permutation_arguments_are_named(fitted):
    spaces, responses, model = fitted
    with pytest.raises(ValueError, match="'block_size' parameter must be in"):
        model.score(spaces, responses, n_permutations=9, block_size=40, n_bootstraps=0)
    with pytest.raises(ValueError, match="'n_permutations' parameter must be >= 0"):
        model.score(spaces, responses, n_permutations=-1, n_bootstraps=0)
