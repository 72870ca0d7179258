"""Variance partitioning recovers planted unique and shared variance."""

import numpy as np
import pytest

from encoding_simulation import simulate
from neurodec.data import Features
from neurodec.encoding import EncodingModel, fit_variance_partition, partition_variance, write_encoding_outputs


@pytest.fixture(scope="module")
def spaces():
    # P = [A, hidden], Q = [B, hidden]: area A is unique to P, area B unique to Q, area "hidden" shared.
    features, responses, truth = simulate(np.random.default_rng(2), n_train=150, signal_sd=2.0)
    hidden = truth["hidden"]
    ids = hidden.stimulus_ids
    p = Features(np.hstack([features["A"].data, hidden.data]), ids, name="P")
    q = Features(np.hstack([features["B"].data, hidden.data]), ids, name="Q")
    return p, q, responses, truth


def test_partition_arithmetic():
    part = partition_variance([0.5, 0.3], [0.4, 0.1], [0.3, 0.25], names=("clip", "resnet"))
    np.testing.assert_allclose(part.unique_a, [0.2, 0.05])
    np.testing.assert_allclose(part.unique_b, [0.1, 0.2])
    np.testing.assert_allclose(part.shared, [0.2, 0.05])
    assert list(part.to_frame().columns) == ["r2:clip", "r2:resnet", "r2:joint", "unique:clip", "unique:resnet", "shared"]
    with pytest.raises(ValueError, match="same shape"):
        partition_variance([0.5], [0.4, 0.1], [0.3, 0.2])


def test_set_theoretic_partition_recovers_planted_variance(spaces):
    p, q, responses, truth = spaces
    part = fit_variance_partition(p, q, responses, alphas=np.logspace(-1, 6, 8), device="cpu")
    areas, nc = truth["areas"], truth["noise_ceiling"]
    for area, unique_p, unique_q, shared in (("A", 1, 0, 0), ("B", 0, 1, 0), ("hidden", 0, 0, 1)):
        k = areas == area
        np.testing.assert_allclose(np.median(part.unique_a[k] / nc[k]), unique_p, atol=0.12)
        np.testing.assert_allclose(np.median(part.unique_b[k] / nc[k]), unique_q, atol=0.12)
        np.testing.assert_allclose(np.median(part.shared[k] / nc[k]), shared, atol=0.12)


def test_banded_split_scores_attribute_variance_to_the_right_space(spaces, tmp_path):
    from neurodec.ridge.banded import r2_score_split  # noqa: F401  (banded ridge must be installed)

    features, responses, truth = simulate(np.random.default_rng(3), n_train=150, signal_sd=2.0)
    model = EncodingModel(banded=True, n_iter=8, alphas=np.logspace(-1, 6, 8), device="cpu", random_state=0)
    scores = model.fit([features["A"], features["B"]], responses).score([features["A"], features["B"]], responses)
    assert scores.space_names == ["sim/A", "sim/B"]
    areas = truth["areas"]
    split = scores.split_r2
    assert np.median(split[0, areas == "A"]) > 0.7 and np.all(np.abs(split[1, areas == "A"]) < 0.1)
    assert np.median(split[1, areas == "B"]) > 0.7 and np.all(np.abs(split[0, areas == "B"]) < 0.1)
    # The shares add up to the joint R^2 (around the training mean: close to the test R^2 here).
    driven = areas != "hidden"
    np.testing.assert_allclose(split.sum(0)[driven], scores.r2[driven], atol=0.05)
    assert model.best_gammas_.shape == (2, responses.n_units)
    assert "split_r2:sim/A" in scores.to_frame().columns
    written = write_encoding_outputs(scores, tmp_path, figures=False, report=False, metrics=())
    names = sorted(p.name for p in written["maps"])
    assert names == ["sub-01_space-func1pt8mm_model-simAsimB_stat-alpha_statmap.nii.gz",
                     "sub-01_space-func1pt8mm_model-simAsimB_stat-splitr2_band-simA_statmap.nii.gz",
                     "sub-01_space-func1pt8mm_model-simAsimB_stat-splitr2_band-simB_statmap.nii.gz"]
