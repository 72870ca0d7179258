"""Bootstrap intervals of ROI means over test stimuli, and the paired best-model decision."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from encoding_simulation import simulate
from neurodec.data import Features, Responses
from neurodec.encoding import EncodingModel, best_model_per_roi, pearson_r, r2_score, summarize_rois
from neurodec.encoding.bootstrap import bootstrap_counts, bootstrap_scores

ALPHAS = np.logspace(-1, 6, 8)


def test_bootstrap_scores_equal_scores_of_the_resampled_data(rng):
    y = rng.normal(size=(30, 6)) + 3.0
    p = 0.5 * y + rng.normal(size=(30, 6)) + 1.0
    counts = bootstrap_counts(30, 5, 0)
    assert np.all(counts.sum(axis=1) == 30)
    np.testing.assert_array_equal(counts, bootstrap_counts(30, 5, 0))  # a seed gives the same resamples
    r, r2 = bootstrap_scores(y, p, counts)
    for b in range(5):
        rows = np.repeat(np.arange(30), counts[b].astype(int))
        np.testing.assert_allclose(r[b], pearson_r(y[rows], p[rows]), atol=1e-12)
        np.testing.assert_allclose(r2[b], r2_score(y[rows], p[rows]), atol=1e-12)


def _trials(ids, n_repeats, split):
    return pd.DataFrame({"stimulus_id": np.tile(ids, n_repeats), "session": 1, "run": 1,
                         "repeat": np.repeat(np.arange(n_repeats), len(ids)), "split": split})


def _test_responses(rng, w, n_test, noise_sd, n_repeats, units):
    """A fresh test set of the planted linear model: features and repeated trials."""
    ids = np.array([f"t{i}" for i in range(n_test)])
    X = rng.standard_normal((n_test, w.shape[0]))
    signal = X @ w
    data = np.concatenate([signal + noise_sd * rng.standard_normal(signal.shape) for _ in range(n_repeats)])
    return Features(X, ids, name="sim/A"), Responses(data.astype(np.float32), _trials(ids, n_repeats, "test"), units,
                                                     subject="subj01")


def test_roi_interval_covers_the_population_mean_of_a_planted_effect():
    """95% intervals over resampled test stimuli cover the fitted model's population ROI mean about 95% of the time."""
    rng = np.random.default_rng(3)
    n_features, n_units, noise_sd, n_repeats = 8, 10, 1.5, 3
    w = rng.standard_normal((n_features, n_units)) / np.sqrt(n_features)
    units = pd.DataFrame({"roi:sim": ["V1"] * n_units})
    ids = np.array([f"s{i}" for i in range(150)])
    X = rng.standard_normal((150, n_features))
    data = np.concatenate([X @ w + noise_sd * rng.standard_normal((150, n_units)) for _ in range(2)])
    train = Responses(data.astype(np.float32), _trials(ids, 2, "train"),
                      units, subject="subj01")
    model = EncodingModel(alphas=ALPHAS, device="cpu", random_state=0).fit(Features(X, ids, name="sim/A"), train)
    # Population scores of the fitted model on new stimuli (X ~ N(0, I), noise averaged over the repeats).
    weights, bias = model.raw_weights()
    var_y = (w**2).sum(axis=0) + noise_sd**2 / n_repeats
    true_r2 = 1 - (((w - weights) ** 2).sum(axis=0) + bias**2 + noise_sd**2 / n_repeats) / var_y
    true_r = (w * weights).sum(axis=0) / np.sqrt(var_y * (weights**2).sum(axis=0))
    covered = {"r": [], "r2": []}
    widths = []
    for _ in range(40):
        features, test = _test_responses(rng, w, 60, noise_sd, n_repeats, units)
        scores = model.score(features, test, noise_ceiling=np.full(n_units, 0.5), n_bootstraps=400)
        for metric, truth in (("r", true_r), ("r2", true_r2)):
            low, high = scores.bootstrap.interval(metric, "sim", "V1")
            covered[metric].append(low <= truth.mean() <= high)
        summary = summarize_rois(scores, "sim", metric="r2")
        assert summary["ci_low"].item() <= summary["mean"].item() <= summary["ci_high"].item()
        assert scores.bootstrap.estimate("r2", "sim", "V1") == pytest.approx(summary["mean"].item())
        widths.append(summary["ci_high"].item() - summary["ci_low"].item())
    assert 0.8 <= np.mean(covered["r"]) <= 1.0
    assert 0.8 <= np.mean(covered["r2"]) <= 1.0
    assert 0.02 < np.median(widths) < 0.5


@pytest.fixture(scope="module")
def planted_scores():
    features, responses, _ = simulate(np.random.default_rng(1))
    fitted = {name: EncodingModel(alphas=ALPHAS, device="cpu", random_state=0).fit(features[name], responses)
              for name in ("A", "B")}
    return {f"sim/{name}": dataclasses.replace(model.score(features[name], responses), name=f"sim/{name}")
            for name, model in fitted.items()}


def test_clear_winner_is_decided_and_identical_models_are_not(planted_scores):
    table = best_model_per_roi(planted_scores, "sim", metric="r2_normalized").set_index("roi")
    assert table.loc["A", "best_model"] == "sim/A" and table.loc["B", "best_model"] == "sim/B"
    assert table.loc["A", "decided"] and table.loc["B", "decided"]
    assert table.loc["A", "difference_ci_low"] > 0 and table.loc["A", "verdict"] == "decided"
    twins = {"first": planted_scores["sim/A"], "second": dataclasses.replace(planted_scores["sim/A"], name="second")}
    same = best_model_per_roi(twins, "sim", metric="r2_normalized").set_index("roi")
    assert not same["decided"].any()
    assert same.loc["A", "difference_ci_low"] <= 0 <= same.loc["A", "difference_ci_high"]
    assert same["verdict"].str.startswith("undecided").all()


def test_unpaired_bootstraps_never_decide(planted_scores):
    features, responses, _ = simulate(np.random.default_rng(1))
    other = EncodingModel(alphas=ALPHAS, device="cpu", random_state=0).fit(features["B"], responses)
    reseeded = other.score(features["B"], responses, bootstrap_random_state=1)
    table = best_model_per_roi({"sim/A": planted_scores["sim/A"], "sim/B": reseeded}, "sim")
    assert not table["decided"].any() and set(table["verdict"]) == {"undecided: no paired bootstrap"}


def test_score_records_status_alphas_and_fit_info(rng):
    features, responses, _ = simulate(rng, n_per_area=4)
    responses.data[responses.trials["split"] == "train", 0] = 1.0  # constant training responses
    with pytest.warns(UserWarning, match="excludes 1"):
        model = EncodingModel(alphas=ALPHAS, cv=4, device="cpu", random_state=0).fit(features["A"], responses)
    scores = model.score(features["A"], responses, n_bootstraps=0)
    assert scores.bootstrap is None
    assert scores.status[0] == "excluded: constant training responses" and (scores.status[1:] == "scored").all()
    np.testing.assert_array_equal(scores.best_alphas, model.best_alphas_)
    info = scores.fit_info
    assert info["alphas"] == pytest.approx(ALPHAS.tolist()) and info["cv"] == 4
    assert info["n_train"] == 120 and info["n_train_trials"] == 240 and info["n_test"] == 40
    assert info["test_repeats"] == {3: 40} and info["noise_ceiling"] == "ncsnr"
    assert info["features"][0]["name"] == "sim/A" and info["features"][0]["n_features"] == 10
