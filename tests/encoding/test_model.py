"""EncodingModel on planted ground truth: normalized scores, best layer, ROI summaries, bad input, storage."""

import numpy as np
import pandas as pd
import pytest

from encoding_simulation import simulate
from neurodec.data import Features
from neurodec.encoding import (
    EncodingModel,
    best_layer,
    compare_models,
    load_encoding_model,
    summarize_rois,
)

ALPHAS = np.logspace(-1, 6, 8)


@pytest.fixture(scope="module")
def planted():
    features, responses, truth = simulate(np.random.default_rng(1))
    scores = {}
    for name in ("A", "B"):
        model = EncodingModel(alphas=ALPHAS, device="cpu", random_state=0).fit(features[name], responses)
        scores[f"sim/{name}"] = model.score(features[name], responses, n_permutations=99, random_state=0)
    return features, responses, truth, scores


def test_normalized_scores_near_one_where_model_is_right_zero_elsewhere(planted):
    _, _, truth, scores = planted
    areas = truth["areas"]
    s = scores["sim/A"]
    np.testing.assert_allclose(s.noise_ceiling, truth["noise_ceiling"])
    assert np.median(s.r2_normalized[areas == "A"]) > 0.85
    assert np.median(s.r_normalized[areas == "A"]) > 0.9
    assert np.all(s.r2_normalized[areas != "A"] < 0.3) and np.median(np.abs(s.r2_normalized[areas != "A"])) < 0.1
    assert np.all(s.q_values[areas == "A"] < 0.05)
    assert np.mean(s.q_values[areas == "hidden"] < 0.05) <= 0.1


def test_best_layer_and_roi_selectivity(planted):
    _, _, truth, scores = planted
    areas = truth["areas"]
    index, names = best_layer(scores, metric="r2")
    assert np.all(names[areas == "A"] == "sim/A") and np.all(names[areas == "B"] == "sim/B")
    summary = summarize_rois(scores["sim/A"], "sim")
    assert list(summary["roi"]) == ["A", "B", "hidden"]
    row = summary.set_index("roi")
    assert row.loc["A", "mean"] > 0.8 and row.loc["B", "mean"] < 0.2
    assert row.loc["A", "fraction_significant"] == 1.0 and row.loc["hidden", "fraction_significant"] <= 0.2
    table = compare_models(scores, "sim")
    ranks = table.set_index(["roi", "layer"])["rank"]
    assert ranks[("A", "A")] == 1 and ranks[("B", "B")] == 1
    assert set(table.columns) >= {"backbone", "layer", "roi", "mean", "median", "fraction_significant"}


def test_matches_sklearn_ridge_at_the_chosen_alpha(planted):
    from sklearn.linear_model import Ridge

    features, responses, _, _ = planted
    model = EncodingModel(alphas=[10.0], device="cpu").fit(features["A"], responses)
    train = responses.split("train").average_repeats()
    X = features["A"].align(train.stimulus_ids)
    Xs = (X - X.mean(0)) / X.std(0)
    reference = Ridge(alpha=10.0).fit(Xs, train.data)
    np.testing.assert_allclose(model.coef_, reference.coef_.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=1e-4, atol=1e-5)
    weights, bias = model.raw_weights()
    np.testing.assert_allclose(X @ weights + bias, reference.predict(Xs), rtol=1e-4, atol=1e-4)
    prediction = model.predict(features["A"], stimulus_ids=train.stimulus_ids[:5])
    np.testing.assert_allclose(prediction, reference.predict(Xs[:5]), rtol=1e-3, atol=1e-4)


def test_single_trials_and_concatenated_spaces(planted):
    features, responses, truth, _ = planted
    model = EncodingModel(alphas=ALPHAS, device="cpu", average_repeats=False).fit(
        [features["A"], features["B"]], responses
    )
    assert model.n_train_ == (responses.trials["split"] == "train").sum()
    assert model.coef_.shape == (20, responses.n_units) and model.feature_names_ == ["sim/A", "sim/B"]
    s = model.score([features["A"], features["B"]], responses)
    assert s.name == "sim/A+sim/B"
    assert np.median(s.r2_normalized[truth["areas"] != "hidden"]) > 0.8


def test_nan_and_constant_voxels_are_excluded_and_reported(planted):
    features, responses, _, _ = planted
    broken = responses.select_units(np.arange(responses.n_units))
    broken.data = broken.data.copy()
    broken.data[3, 0] = np.nan
    broken.data[:, 1] = 2.0
    with pytest.warns(UserWarning, match="excludes 2 of 36 units: 1 with NaN/inf and 1 with constant"):
        model = EncodingModel(alphas=ALPHAS, device="cpu").fit(features["A"], broken)
    assert model.excluded_units_.to_dict("list") == {"unit": [0, 1], "reason": ["non-finite", "constant"]}
    assert np.isnan(model.coef_[:, :2]).all() and np.isfinite(model.coef_[:, 2:]).all()
    assert np.isnan(model.predict(features["A"])[:, :2]).all()
    with pytest.warns(UserWarning, match="NaN/inf test"):
        broken.data[-1, 5] = np.nan  # a test trial
        scores = model.score(features["A"], broken)
    assert np.isnan(scores.r[[0, 1, 5]]).all() and np.isfinite(scores.r[2:5]).all()


def test_bad_input_errors(planted, rng):
    features, responses, _, _ = planted
    few = features["A"]
    missing = Features(few.data[3:], few.stimulus_ids[3:], name="partial")
    with pytest.raises(ValueError, match=r"no rows for 3 stimulus id\(s\).*" + str(few.stimulus_ids[0])):
        EncodingModel(alphas=ALPHAS, device="cpu").fit(missing, responses)
    small = responses.select_trials(np.flatnonzero(responses.trials["split"].isin(["test"]))[:200])
    small.trials.loc[:5, "split"] = "train"
    with pytest.raises(ValueError, match="needs at least 10"):
        EncodingModel(alphas=ALPHAS, cv=5, device="cpu").fit(features["A"], small)
    model = EncodingModel(alphas=ALPHAS, device="cpu").fit(features["A"], responses)
    with pytest.raises(ValueError, match=r"fit on feature spaces .*sim/A.*got \[\('sim/B'"):
        model.predict(features["B"])
    with pytest.raises(ValueError, match="fit on 36 units"):
        model.score(features["A"], responses.select_units(np.arange(5)))
    with pytest.raises(ValueError, match="not fitted"):
        EncodingModel().predict(features["A"])


def test_save_and_load_roundtrip(planted, tmp_path):
    features, responses, _, _ = planted
    model = EncodingModel(alphas=ALPHAS, device="cpu", cv=4).fit(features["A"], responses)
    path = model.save(tmp_path / "fits" / "model.npz")
    loaded = load_encoding_model(path)
    assert loaded.get_params() == {**model.get_params(), "alphas": ALPHAS.tolist()}
    np.testing.assert_array_equal(loaded.predict(features["A"]), model.predict(features["A"]))
    pd.testing.assert_frame_equal(loaded.excluded_units_, model.excluded_units_, check_dtype=False)
    assert not list(path.parent.glob(".*tmp*"))
    with pytest.raises(ValueError, match=".npz"):
        model.save(tmp_path / "model.h5")


def test_a_fit_saved_by_another_version_loads_with_a_warning(planted, tmp_path):
    import json
    import warnings

    import neurodec

    features, responses, _, _ = planted
    path = EncodingModel(alphas=ALPHAS, device="cpu", cv=4).fit(features["A"], responses).save(tmp_path / "m.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # this version's own file: no warning
        reference = load_encoding_model(path)
    with np.load(path) as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays["meta"]))
    assert meta["neurodec_version"] == neurodec.__version__
    for version, writer in (("0.0.1", "neurodec 0.0.1"), (None, "an earlier neurodec")):
        if version is None:
            del meta["neurodec_version"]
        else:
            meta["neurodec_version"] = version
        np.savez(path, **{**arrays, "meta": np.array(json.dumps(meta))})
        with pytest.warns(UserWarning, match=f"m.npz was written by {writer}.*this is neurodec {neurodec.__version__}"):
            loaded = load_encoding_model(path)
        np.testing.assert_array_equal(loaded.coef_, reference.coef_)


def test_pre_averaged_responses_keep_their_repeat_counts(planted):
    features, responses, truth, scores = planted
    averaged = responses.average_repeats()
    model = EncodingModel(alphas=ALPHAS, device="cpu", random_state=0).fit(features["A"], averaged)
    again = model.score(features["A"], averaged)
    np.testing.assert_allclose(again.noise_ceiling, truth["noise_ceiling"])  # 3 test repeats, not 1
    np.testing.assert_allclose(again.r2, scores["sim/A"].r2, atol=1e-6)


def test_noise_ceiling_estimated_from_test_repeats_without_ncsnr(planted):
    features, responses, truth, scores = planted
    bare = responses.select_units(np.arange(responses.n_units))
    bare.units = bare.units.drop(columns="ncsnr")
    model = EncodingModel(alphas=ALPHAS, device="cpu", random_state=0).fit(features["A"], bare)
    estimated = model.score(features["A"], bare).noise_ceiling
    np.testing.assert_allclose(np.median(estimated), truth["noise_ceiling"][0], atol=0.1)


def test_fit_or_load_reuses_matching_fits_only(planted, tmp_path, caplog):
    import logging

    from neurodec.encoding import fit_or_load_encoding_model

    features, responses, _, _ = planted
    path = tmp_path / "fit.npz"
    first = fit_or_load_encoding_model(path, features["A"], responses, alphas=ALPHAS, device="cpu")
    mtime = path.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="neurodec"):
        again = fit_or_load_encoding_model(path, features["A"], responses, alphas=ALPHAS, device="cpu")
        assert "Reusing" in caplog.text and path.stat().st_mtime_ns == mtime
        np.testing.assert_array_equal(again.coef_, first.coef_)
        other_params = fit_or_load_encoding_model(path, features["A"], responses, alphas=[1.0, 10.0], device="cpu")
        assert "other parameters" in caplog.text and other_params.best_alphas_.max() <= 10
        changed = responses.select_units(np.arange(responses.n_units))
        changed.data = changed.data * 2
        fit_or_load_encoding_model(path, features["A"], changed, alphas=[1.0, 10.0], device="cpu")
        assert "training data changed" in caplog.text


def test_alpha_edge_warning_counts_only_predicted_units(planted):
    import warnings

    features, responses, truth, _ = planted
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all: noise units at the largest alpha are expected
        model = EncodingModel(alphas=ALPHAS, device="cpu", random_state=0).fit(features["A"], responses)
    predicted = np.nanmax(model.cv_scores_, axis=0) > 0
    # Not vacuous: unpredicted (area B / hidden) units did pick the largest alpha, which RidgeCV alone warns about.
    assert np.sum(~predicted & (model.best_alphas_ == ALPHAS.max())) > 0
    assert np.all(model.best_alphas_[predicted] < ALPHAS.max())
    narrow = np.array([1e-2, 1e-1, 1.0])  # too weak for area A's noisy responses: its units sit at the largest
    with pytest.warns(UserWarning, match="EncodingModel.fit: .* targets with a positive cross-validated score chose an alpha at the edge") as rec:
        model = EncodingModel(alphas=narrow, device="cpu", random_state=0).fit(features["A"], responses)
    predicted = np.nanmax(model.cv_scores_, axis=0) > 0
    n_low = int(np.sum(predicted & (model.best_alphas_ == 1e-2)))
    n_high = int(np.sum(predicted & (model.best_alphas_ == 1.0)))
    assert n_high >= (truth["areas"] == "A").sum() - 1
    message = str(rec[0].message)
    assert f"{n_low + n_high} of the {int(predicted.sum())} targets" in message and f"alphas=np.logspace({-2 - 2 * (n_low > 0)}, 2," in message
    assert len(rec) == 1  # one warning, from the outermost fit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EncodingModel(alphas=narrow, device="cpu", warn_alpha_edge=False).fit(features["A"], responses)


def test_roi_order_follows_the_atlas_and_backbone_names_keep_their_slashes(planted):
    import dataclasses

    import pandas as pd

    _, _, _, scores = planted
    # A categorical ROI column (as load_nsd makes it) fixes the label order.
    units = scores["sim/A"].units.copy()
    units["roi:sim"] = pd.Categorical(units["roi:sim"].astype(str), categories=["hidden", "B", "A", ""])
    ordered = {f"timm/resnet18/{k[-1]}": dataclasses.replace(s, units=units) for k, s in scores.items()}
    assert list(summarize_rois(ordered["timm/resnet18/A"], "sim")["roi"]) == ["hidden", "B", "A"]
    table = compare_models(ordered, "sim")
    assert set(table["backbone"]) == {"timm/resnet18"} and set(table["layer"]) == {"A", "B"}
