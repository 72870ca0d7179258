"""retrieval_top_k: brute-force agreement, hand-computable cases, planted noise, bad input."""

import numpy as np
import pytest

from neurodec.metrics import retrieval_top_k


def _brute_force(pred, true, k, idx):
    """Loop over the draw: is each sample's match among the k most similar (ties against it)?"""
    def cos(a, b):
        return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    image_hits = brain_hits = 0
    for i in idx:
        right = cos(pred[i], true[i])
        image_hits += sum(cos(pred[i], true[j]) >= right for j in idx if j != i) < k
        brain_hits += sum(cos(pred[j], true[i]) >= right for j in idx if j != i) < k
    return image_hits / len(idx), brain_hits / len(idx)


@pytest.mark.parametrize("k", [1, 3])
def test_agrees_with_brute_force_loop(rng, k):
    true = rng.standard_normal((40, 8))
    pred = true + 1.5 * rng.standard_normal((40, 8))
    res = retrieval_top_k(pred, true, k=k, n_way=15, n_draws=4, random_state=3)
    # The same draws as the function's (same generator, same call sequence).
    draws = np.random.default_rng(3)
    for d in range(4):
        idx = draws.choice(40, size=15, replace=False)
        img, brain = _brute_force(pred, true, k, idx)
        assert res.image_retrieval_draws[d] == pytest.approx(img, abs=1e-12)
        assert res.brain_retrieval_draws[d] == pytest.approx(brain, abs=1e-12)
    assert res.image_retrieval == pytest.approx(res.image_retrieval_draws.mean())
    assert res.chance == pytest.approx(k / 15) and res.n_way == 15


def test_hand_computable_cases():
    true = np.eye(4)
    assert retrieval_top_k(true, true, n_way=4, n_draws=2, random_state=0).image_retrieval == 1.0
    # Each prediction points at the next sample's embedding: nothing is retrieved at top-1 ...
    shifted = np.roll(true, 1, axis=0)
    res = retrieval_top_k(shifted, true, n_way=4, random_state=0)
    assert res.image_retrieval == 0.0 and res.brain_retrieval == 0.0
    # At top-2 its right match (similarity 0) ties with two other candidates: ties count against it.
    assert retrieval_top_k(shifted, true, k=2, n_way=4).image_retrieval == 0.0
    # Scale does not matter (cosine of L2-normalized vectors); trailing axes are flattened.
    tokens = np.arange(1, 25, dtype=float).reshape(4, 3, 2) ** 2
    assert retrieval_top_k(5 * tokens, tokens, n_way=4).brain_retrieval == 1.0


def test_planted_noise_levels_are_monotone(rng):
    true = rng.standard_normal((600, 32))
    noise = rng.standard_normal((600, 32))
    scores = [retrieval_top_k(true + s * noise, true, random_state=0).image_retrieval for s in (0.5, 1.5, 3.0, 20.0)]
    assert scores[0] > 0.9 and all(a > b for a, b in zip(scores, scores[1:]))
    assert scores[-1] < 0.05  # near chance (1/300) under overwhelming noise


def test_fewer_samples_than_n_way_uses_all_and_warns(rng):
    true = rng.standard_normal((20, 5))
    with pytest.warns(UserWarning, match="20 samples are fewer than n_way=300"):
        res = retrieval_top_k(true, true, n_draws=30)
    assert res.n_way == 20 and res.image_retrieval_draws.shape == (1,) and res.chance == pytest.approx(1 / 20)


def test_torch_input(rng):
    torch = pytest.importorskip("torch")
    true = rng.standard_normal((30, 6))
    res = retrieval_top_k(torch.from_numpy(true).float(), torch.from_numpy(true), n_way=30)
    assert res.image_retrieval == 1.0


@pytest.mark.parametrize(
    ("pred_shape", "kwargs", "match"),
    [
        ((10, 4), {}, "same shape"),
        ((12, 5), {"k": 0}, "'k' parameter"),
        ((12, 5), {"n_way": 1}, "'n_way' parameter"),
        ((12, 5), {"k": 12, "n_way": 12}, "smaller than n_way=12"),
        ((12,), {}, "shape \\(n_samples, n_features\\)"),
    ],
)
def test_bad_input(rng, pred_shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        retrieval_top_k(rng.standard_normal(pred_shape), rng.standard_normal((12, 5)), **kwargs)


def test_nan_rejected(rng):
    pred = rng.standard_normal((12, 5))
    pred[3, 1] = np.nan
    with pytest.raises(ValueError, match="'pred' .* NaN"):
        retrieval_top_k(pred, rng.standard_normal((12, 5)), n_way=12)
