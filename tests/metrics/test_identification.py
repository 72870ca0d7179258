"""Two-way identification and correlation distance: brute-force loops, hand-computable cases, bad input."""

import numpy as np
import pytest
from scipy.spatial.distance import correlation

from neurodec.metrics import correlation_distance, two_way_identification


def _two_way_loop(pred, true):
    n = len(pred)
    r = lambda a, b: np.corrcoef(a, b)[0, 1]  # noqa: E731
    return [sum(r(true[i], pred[j]) < r(true[j], pred[j]) for i in range(n) if i != j) / (n - 1) for j in range(n)]


def test_two_way_matches_brute_force_loop(rng):
    true = rng.standard_normal((12, 30))
    pred = true + 4.0 * rng.standard_normal((12, 30))
    res = two_way_identification(pred, true)
    np.testing.assert_allclose(res.per_image, _two_way_loop(pred, true), rtol=0, atol=1e-12)
    assert 0.5 < res.mean < 1.0


def test_two_way_hand_computable():
    true = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    # Identical features: every wrong ground truth correlates less (-1/3 < 1).
    assert two_way_identification(true, true).mean == 1.0
    # Prediction 0 matches ground truth 1 best and its own worst: 0 of 2; the others are exact: 1.
    pred = true.copy()
    pred[0] = [-1.0, 1.0, 0.0, 0.0]
    res = two_way_identification(pred, true)
    np.testing.assert_allclose(res.per_image, [0.0, 1.0, 1.0])
    assert res.mean == pytest.approx(2 / 3)
    # Ties count as failures; features of any shape are flattened.
    assert two_way_identification(np.ones((3, 2, 2)) + np.eye(4)[:3].reshape(3, 2, 2), true.reshape(3, 2, 2)).mean == 1.0


def test_two_way_permuted_predictions_drop_to_chance(rng):
    true = rng.standard_normal((200, 50))
    pred = true + 0.5 * rng.standard_normal((200, 50))
    assert two_way_identification(pred, true).mean > 0.99
    assert abs(two_way_identification(pred[rng.permutation(200)], true).mean - 0.5) < 0.1


def test_correlation_distance_matches_scipy(rng):
    true = rng.standard_normal((6, 40))
    pred = true + rng.standard_normal((6, 40))
    res = correlation_distance(pred, true)
    np.testing.assert_allclose(res.per_image, [correlation(pred[i], true[i]) for i in range(6)], rtol=0, atol=1e-12)
    assert correlation_distance(true, 3 * true + 1).mean == pytest.approx(0.0, abs=1e-12)
    assert correlation_distance(-true, true).mean == pytest.approx(2.0)


@pytest.mark.parametrize("metric", [two_way_identification, correlation_distance])
def test_bad_input(rng, metric):
    with pytest.raises(ValueError, match=r"same shape.*\(4, 5\).*\(4, 6\)"):
        metric(rng.standard_normal((4, 5)), rng.standard_normal((4, 6)))
    constant = rng.standard_normal((4, 5))
    constant[2] = 1.0
    with pytest.raises(ValueError, match=r"rows \[2\] of 'pred_features' are constant"):
        metric(constant, rng.standard_normal((4, 5)))
