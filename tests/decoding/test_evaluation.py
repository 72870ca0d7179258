"""Evaluation hygiene: nearest-training similarity, the least-similar half, exact per-sample retrieval,
bootstrap intervals, aggregation over subjects and seeds, on hand-computable cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurodec.decoding import (
    aggregate_evaluations, evaluate_decoding, nearest_train_similarity, per_sample_retrieval,
)
from neurodec.metrics import retrieval_top_k


def test_nearest_train_similarity_hand_computed():
    train = np.array([[1.0, 0.0], [0.0, 1.0]])
    test = np.array([[2.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_allclose(nearest_train_similarity(test, train, batch_size=2),
                               [1.0, np.sqrt(0.5), 0.0], atol=1e-15)


def test_per_sample_retrieval_hand_computed():
    true = np.eye(4)
    # Prediction 0 is right; 1 is nearer true 2 than its own; 2 ties with true 3; 3 is right.
    pred = np.array([[1.0, 0.1, 0, 0], [0, 0.5, 1.0, 0], [0, 0, 1.0, 1.0], [0, 0, 0, 1.0]])
    np.testing.assert_array_equal(per_sample_retrieval(pred, true, n_way=4), [1, 0, 0, 1])
    # n_way = 2: one companion out of 3 others; a hit unless it is one of the b better ones: (3 - b) / 3.
    np.testing.assert_allclose(per_sample_retrieval(pred, true, n_way=2), [1, 2 / 3, 2 / 3, 1])
    # Brain retrieval ranks the predictions for each true embedding: true 2 is nearer prediction 1 (0.89) than 2 (0.71).
    np.testing.assert_array_equal(per_sample_retrieval(pred, true, n_way=4, direction="brain"), [1, 1, 0, 1])


def test_per_sample_retrieval_is_the_expectation_of_the_drawn_protocol(rng):
    true = rng.standard_normal((120, 16))
    pred = true + 1.2 * rng.standard_normal((120, 16))
    exact = per_sample_retrieval(pred, true, n_way=30).mean()
    drawn = retrieval_top_k(pred, true, n_way=30, n_draws=3000, random_state=0)
    # Each draw's fraction has sd <= 0.5 / sqrt(30); over 3000 draws 6 standard errors is < 0.01.
    assert abs(drawn.image_retrieval - exact) < 6 * 0.5 / np.sqrt(30 * 3000)
    exact_brain = per_sample_retrieval(pred, true, n_way=30, direction="brain").mean()
    assert abs(drawn.brain_retrieval - exact_brain) < 6 * 0.5 / np.sqrt(30 * 3000)


def test_every_metric_on_all_and_the_least_similar_half():
    train = np.array([[1.0, 0.0, 0.0]])
    # Test embeddings' similarity to the only training image: 1, 0, 0.8, 0.6 -> least similar: samples 1 and 3.
    test = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.8, 0.6, 0.0], [0.6, 0.0, 0.8]])
    scores = np.array([4.0, 1.0, 3.0, 2.0])
    table = evaluate_decoding(test, test, train, metrics={"hand": lambda p, t: scores}, n_boot=200, random_state=0)
    assert list(table["subset"]) == ["all", "least-similar half"]
    np.testing.assert_allclose(table["estimate"], [2.5, 1.5])
    np.testing.assert_allclose(table["mean_similarity"], [0.6, 0.3])
    assert list(table["n_samples"]) == [4, 2]
    assert (table["ci_low"] <= table["estimate"]).all() and (table["estimate"] <= table["ci_high"]).all()
    # Bootstrap means cannot leave the range of the resampled scores.
    assert table["ci_low"].iloc[0] >= 1.0 and table["ci_high"].iloc[0] <= 4.0
    constant = evaluate_decoding(test, test, train, metrics={"c": lambda p, t: np.full(4, 0.7)}, n_boot=50,
                                 random_state=0)
    np.testing.assert_allclose(constant[["ci_low", "ci_high"]].to_numpy(), 0.7)


def test_bootstrap_interval_has_the_width_of_the_standard_error(rng):
    n = 400
    scores = rng.standard_normal(n)
    embeddings = rng.standard_normal((n, 8))
    table = evaluate_decoding(embeddings, embeddings, embeddings[:10], metrics={"s": lambda p, t: scores},
                              n_boot=2000, random_state=1)
    width = table["ci_high"].iloc[0] - table["ci_low"].iloc[0]
    expected = 2 * 1.959964 * scores.std(ddof=1) / np.sqrt(n)
    # The percentile interval's width varies by ~sqrt(1 / (2 n_boot)) relative plus the tails' noise: 15% is wide.
    assert abs(width / expected - 1) < 0.15
    again = evaluate_decoding(embeddings, embeddings, embeddings[:10], metrics={"s": lambda p, t: scores},
                              n_boot=2000, random_state=1)
    pd.testing.assert_frame_equal(table, again)


def test_builtin_metrics_and_a_memorizing_decoder(rng):
    """A decoder that is right only on near-copies of training images scores lower on the least-similar half."""
    train = rng.standard_normal((200, 32))
    copies = train[:50] + 0.05 * rng.standard_normal((50, 32))
    novel = rng.standard_normal((50, 32))
    true = np.vstack([copies, novel])
    pred = np.vstack([copies + 0.1 * rng.standard_normal((50, 32)), rng.standard_normal((50, 32))])
    table = evaluate_decoding(pred, true, train, metrics=["cosine", "image_retrieval", "two_way_identification"],
                              n_way=50, n_boot=100, random_state=0).set_index(["metric", "subset"])
    assert table.loc[("image_retrieval", "all"), "estimate"] == pytest.approx(
        per_sample_retrieval(pred, true, n_way=50).mean())
    for metric in ("cosine", "image_retrieval", "two_way_identification"):
        assert table.loc[(metric, "least-similar half"), "ci_high"] < table.loc[(metric, "all"), "ci_low"]


def test_aggregation_across_subjects_and_seeds():
    def run(value):
        return pd.DataFrame({"metric": ["m", "m"], "subset": ["all", "least-similar half"],
                             "estimate": [value, value / 2]})

    results = {(1, 0): run(0.5), (1, 1): run(0.7), (2, 0): run(0.9), (2, 1): run(0.9)}
    out = aggregate_evaluations(results)
    row = out.summary.set_index(["metric", "subset"]).loc[("m", "all")]
    # Subject means 0.6 and 0.9; their mean 0.75, sd sqrt(0.045); seed sds 0.1414 and 0 -> mean 0.0707.
    assert row["mean"] == pytest.approx(0.75)
    assert row["sd_subjects"] == pytest.approx(np.sqrt(0.045))
    assert row["sd_seeds"] == pytest.approx(np.sqrt(0.02) / 2)
    assert (row["n_subjects"], row["n_seeds"]) == (2, 2)
    assert out.per_subject.loc[("m", "least-similar half"), 1] == pytest.approx(0.3)
    combined = pd.concat([f.assign(subject=s, seed=k) for (s, k), f in results.items()])
    pd.testing.assert_frame_equal(aggregate_evaluations(combined).summary, out.summary)


def test_bad_input_is_named(rng):
    x = rng.standard_normal((6, 3))
    with pytest.raises(ValueError, match="Unknown metric"):
        evaluate_decoding(x, x, x, metrics=["pixcorr"])
    with pytest.raises(ValueError, match="one row per test sample"):
        evaluate_decoding(x, x[:5], x)
    with pytest.raises(ValueError, match=r"one score per test sample, shape \(6,\)"):
        evaluate_decoding(x, x, x, metrics={"bad": lambda p, t: np.zeros(3)})
    with pytest.raises(ValueError, match="n_boot"):
        evaluate_decoding(x, x, x, n_boot=5)
    with pytest.raises(ValueError, match="same model"):
        nearest_train_similarity(x, rng.standard_normal((4, 2)))
    with pytest.raises(ValueError, match="'subject' column"):
        aggregate_evaluations(pd.DataFrame({"metric": ["m"], "subset": ["all"], "estimate": [1.0]}))
