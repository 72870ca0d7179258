"""write_encoding_outputs: BIDS-derivatives folder with maps, tables, figures and a report that links them."""

import json
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from encoding_simulation import simulate
from neurodec.encoding import EncodingScores, partition_variance, write_encoding_outputs


def _scores(responses, r2, name):
    return EncodingScores(
        r=np.sqrt(np.clip(r2, 0, None)), r2=r2, noise_ceiling=np.full(responses.n_units, 0.5),
        units=responses.units, name=name, subject=responses.subject, space=responses.space, info=responses.info,
        n_test=40,
    )


def test_volume_outputs_maps_tables_report(tmp_path, rng):
    _, responses, truth = simulate(rng, n_per_area=4)
    areas = truth["areas"]
    r2_a = np.where(areas == "A", 0.4, 0.05)
    r2_b = np.where(areas == "B", 0.3, 0.02)
    r2_a[0] = np.nan  # an excluded voxel
    scores = {"net/layerA": _scores(responses, r2_a, "net/layerA"), "net/layerB": _scores(responses, r2_b, "net/layerB")}
    partition = partition_variance(np.fmax(r2_a, r2_b) + 0.01, r2_a, r2_b, names=("layerA", "layerB"))
    written = write_encoding_outputs(scores, tmp_path, atlas="sim", metrics=("r2", "r2_normalized"),
                                     partitions=[partition])
    base = tmp_path / "derivatives" / "neurodec"
    assert json.loads((base / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    func = base / "sub-01" / "func"
    r2_map = func / "sub-01_space-func1pt8mm_model-netlayerA_stat-r2_statmap.nii.gz"
    assert r2_map in written["maps"]
    image = nib.load(r2_map)
    assert image.shape == responses.info["volume_shape"]
    np.testing.assert_allclose(image.affine, responses.info["affine"])
    u = responses.units
    np.testing.assert_allclose(image.get_fdata()[u.i, u.j, u.k], r2_a, equal_nan=True)
    # The best-model map puts layer A (index 0) on area A voxels and layer B (1) on area B voxels.
    best = nib.load(next(p for p in written["maps"] if "bestmodel" in p.name)).get_fdata()[u.i, u.j, u.k]
    assert np.all(best[areas == "B"] == 1) and np.all(best[(areas == "A")][1:] == 0)
    unique = nib.load(func / "sub-01_space-func1pt8mm_desc-partition_stat-uniquelayerA_statmap.nii.gz")
    np.testing.assert_allclose(unique.get_fdata()[u.i, u.j, u.k], partition.unique_a, rtol=1e-6, equal_nan=True)
    assert "Variance partition: layerA vs layerB" in written["report"][0].read_text()
    comparison = pd.read_csv(next(p for p in written["tables"] if "comparison" in p.name))
    best_per_roi = comparison.loc[comparison.groupby("roi")["mean"].idxmax()].set_index("roi")["layer"]
    assert best_per_roi["A"] == "layerA" and best_per_roi["B"] == "layerB"
    table = pd.read_csv(func / "sub-01_space-func1pt8mm_model-netlayerA_scores.csv")
    np.testing.assert_allclose(table["r2_normalized"], r2_a / 0.5, equal_nan=True)
    report = written["report"][0]
    assert report == base / "sub-01" / "sub-01_desc-encoding_report.html"
    html = report.read_text()
    assert html.count("data:image/png;base64,") == len(written["figures"]) >= 4
    for path in written["maps"] + written["tables"]:
        rel = path.relative_to(report.parent).as_posix()
        assert f'href="{rel}"' in html
        assert (report.parent / rel).exists()
    assert not list(base.rglob(".*.tmp*"))


def test_surface_outputs_and_sensor_units(tmp_path, rng):
    n = 30
    units = pd.DataFrame({"hemi": ["lh"] * 15 + ["rh"] * 15, "vertex": np.r_[np.arange(15), np.arange(15)] * 500})
    r2 = rng.uniform(0, 0.5, n)
    scores = EncodingScores(r=np.sqrt(r2), r2=r2, noise_ceiling=np.full(n, np.nan), units=units, name="clip",
                            subject="subj02", space="fsaverage", info={"n_vertices": {"lh": 163842, "rh": 163842}})
    written = write_encoding_outputs(scores, tmp_path, figures=True, metrics=("r2", "r2_normalized"))
    names = sorted(p.name for p in written["maps"])
    assert names == ["sub-02_hemi-L_space-fsaverage_model-clip_stat-r2_statmap.mgh",
                     "sub-02_hemi-R_space-fsaverage_model-clip_stat-r2_statmap.mgh"]  # r2_normalized is all-NaN
    rh = nib.load(next(p for p in written["maps"] if "hemi-R" in p.name)).get_fdata()[:, 0, 0]
    assert rh.shape == (163842,)
    np.testing.assert_allclose(rh[units.vertex[15:]], r2[15:], rtol=1e-6)
    # MEG sensors: tables and report, no maps.
    sensors = EncodingScores(r=np.sqrt(r2[:5]), r2=r2[:5], noise_ceiling=np.full(5, np.nan), modality="meg",
                             units=pd.DataFrame({"channel": [f"MEG{i}" for i in range(5)]}), name="m", subject="BIGMEG1")
    written = write_encoding_outputs(sensors, tmp_path)
    assert written["maps"] == [] and written["figures"] == []
    assert written["tables"][0].parent == tmp_path / "derivatives" / "neurodec" / "sub-BIGMEG1" / "meg"
    with pytest.raises(ValueError, match="Unknown ROI atlas 'nope'"):
        write_encoding_outputs(sensors, tmp_path, atlas="nope")


def test_several_atlases_one_table_each_and_one_combined_comparison(tmp_path, rng):
    _, responses, truth = simulate(rng, n_per_area=4)
    areas = truth["areas"]
    # A second atlas that reuses the label "A" (for other voxels) and adds "C".
    other = np.where(np.arange(len(areas)) % 2 == 0, "A", "C")
    responses.units["roi:other"] = other
    r2 = {"net/layerA": np.where(areas == "A", 0.4, 0.05), "net/layerB": np.where(areas == "B", 0.3, 0.02)}
    scores = {name: _scores(responses, values, name) for name, values in r2.items()}
    written = write_encoding_outputs(scores, tmp_path, atlas=["sim", "other"], metrics=("r2",))
    func = tmp_path / "derivatives" / "neurodec" / "sub-01" / "func"
    for model in ("netlayerA", "netlayerB"):
        sim = pd.read_csv(func / f"sub-01_model-{model}_atlas-sim_stat-r2normalized_rois.csv")
        assert sim["roi"].tolist() == ["A", "B", "hidden"] and sim["n_units"].tolist() == [4, 4, 4]
        table = pd.read_csv(func / f"sub-01_model-{model}_atlas-other_stat-r2normalized_rois.csv")
        assert table["roi"].tolist() == ["A", "C"] and table["n_units"].tolist() == [6, 6]
    combined = pd.read_csv(func / "sub-01_desc-comparison_stat-r2normalized_rois.csv")
    assert combined["atlas"].tolist() == ["sim"] * 6 + ["other"] * 4
    assert list(dict.fromkeys(combined["label"])) == ["sim:A", "B", "hidden", "other:A", "C"]
    expected = np.mean(r2["net/layerA"][other == "C"]) / 0.5
    row = combined[(combined["label"] == "C") & (combined["model"] == "net/layerA")]
    assert row["mean"].item() == pytest.approx(expected)
    figures = sorted(p.name for p in written["figures"])
    assert "sub-01_desc-roibars_stat-r2normalized_figure.png" in figures  # one panel per atlas
    assert "sub-01_desc-bestmodel_stat-r2normalized_figure.png" in figures
    html = written["report"][0].read_text()
    # The report opens with the summary: facts, then the best model of every ROI of every atlas.
    assert html.index("<h2") == html.index('<h2 id="section-0">Summary</h2>')
    cells = re.findall(r"<td>(.*?)</td>", html.split("Best model per ROI")[1].split("</table>")[0])
    rows = [cells[i : i + 8] for i in range(0, len(cells), 8)]
    # Models are named without their shared backbone ("net/"), which the caption gives.
    assert "Best model per ROI (mean r2_normalized) (net models)" in html
    assert [row[:2] + row[3:4] for row in rows] == [
        ["sim", "A", "layerA"], ["sim", "B", "layerB"], ["sim", "hidden", "layerA"],
        ["other", "A", "layerA"], ["other", "C", "layerA"]]
    # Hand-made scores carry no bootstrap: no best model is called decided.
    assert {row[-1] for row in rows} == {"undecided: no paired bootstrap"}
    assert "flatmap" not in html.lower() and "pycortex" not in html.lower()
    with pytest.raises(ValueError, match="list of distinct names"):
        write_encoding_outputs(scores, tmp_path, atlas=["sim", "sim"])


def test_report_methods_counts_alpha_maps_and_sidecars(tmp_path, rng):
    """The Methods state the fitted values, the unit counts add up, every map has a sidecar, alpha maps are exact."""
    import dataclasses

    from neurodec.data import Features
    from neurodec.encoding import EncodingModel
    from neurodec.viz import sidecar_path
    from neurodec.viz.derivatives import SIDECAR_KEYS

    features, responses, truth = simulate(rng, n_per_area=4)
    responses.units.loc[truth["areas"] == "hidden", "ncsnr"] = 0.0  # no noise ceiling: no normalized score
    responses.data[(responses.trials["split"] == "train").to_numpy(), 0] = 2.0  # constant: excluded from the fit
    alphas = np.logspace(-1, 6, 8)
    meta = {"backbone": "timm/resnet18", "weights": "random:seed=0", "pooling": "grid2", "reduction": "none",
            "preprocessing_description": "resize 256, center crop 224, bilinear, ImageNet mean/std"}
    scores, models = {}, {}
    for name in ("A", "B"):
        feats = Features(features[name].data, features[name].stimulus_ids, name=f"net/layer{name}",
                         meta={**meta, "layer": f"layer{name}"})
        with pytest.warns(UserWarning, match="excludes 1"):
            models[name] = EncodingModel(alphas=alphas, cv=4, device="cpu", random_state=0).fit(feats, responses)
        scores[feats.name] = dataclasses.replace(models[name].score(feats, responses, n_bootstraps=200), name=feats.name)
    described = "Simulated subject written for this test: planted linear encoding model, not real fMRI."
    written = write_encoding_outputs(scores, tmp_path, atlas="sim", data_description=described)
    html = written["report"][0].read_text()
    methods = html.split('id="section-1">Methods</h2>')[1].split("<h2")[0]
    for fact in (described, "8 values log-spaced from 0.1 to 1e+06", "4-fold shuffled K-fold", "(seed 0)",
                 "240 trials averaged over repeats into 120 training samples", "120 trials of 40 stimuli",
                 "No test stimulus is in the training split",
                 "40 stimuli with 3 repeats", "randomly initialized, untrained weights (seed 0)", "pooling grid2",
                 "net/layerA: layer layerA, 10 features", "no dimensionality reduction", "NC = ncsnr^2 / (ncsnr^2 + A)",
                 "images preprocessed as resize 256, center crop 224, bilinear, ImageNet mean/std",
                 "fraction (0 to 1)", "resampled with replacement 200 times", f"numpy {np.__version__}"):
        assert fact in methods, fact
    # Counts reconcile: the reasons and "scored" add up to all units; "scored" splits by noise ceiling.
    counts = pd.read_csv(next(p for p in written["tables"] if "desc-units" in p.name)).set_index("units")
    for model in scores:
        column = counts[model]
        assert column["units"] == responses.n_units == 12
        assert column["excluded: constant training responses"] == 1
        above = [r for r in column.index if r != "units" and not r.startswith("scored:")]
        assert column[above].sum() == column["units"]
        below = [r for r in column.index if r.startswith("scored:")]
        assert column[below].sum() == column["scored (finite r and R2)"] == 11
        assert column["scored: no positive noise ceiling (r2_normalized undefined)"] == 4
    assert "where every unit went" in html and "none (no model has a finite r2_normalized)" in html
    # Best model per ROI comes with its interval and verdict.
    best = html.split("Best model per ROI")[1].split("</table>")[0]
    assert "[95% CI]" in best and ("decided" in best or "undecided" in best)
    # Alpha maps hold the chosen alphas; every map has a sidecar with the expected keys.
    func = tmp_path / "derivatives" / "neurodec" / "sub-01" / "func"
    u = responses.units
    for name, model in models.items():
        path = func / f"sub-01_space-func1pt8mm_model-netlayer{name}_stat-alpha_statmap.nii.gz"
        values = nib.load(path).get_fdata()[u.i, u.j, u.k]
        np.testing.assert_allclose(values, model.best_alphas_.astype(np.float32), equal_nan=True)
        assert np.isnan(values[0])
        sidecar = json.loads(sidecar_path(path).read_text())
        assert sidecar["Stat"] == "alpha" and sidecar["Model"] == f"net/layer{name}"
        assert sidecar["Fit"]["alphas"] == pytest.approx(alphas.tolist())
    assert written["maps"] and len(written["sidecars"]) == len(written["maps"])
    for path in written["maps"]:
        sidecar = json.loads(sidecar_path(path).read_text())
        assert set(SIDECAR_KEYS) <= set(sidecar) and sidecar["Units"] != "n/a" and sidecar["Description"] != "n/a"
    best_map = json.loads(sidecar_path(next(p for p in written["maps"] if "bestmodel" in p.name)).read_text())
    assert best_map["Levels"] == {"0": "net/layerA", "1": "net/layerB"}
    figures = sorted(p.name for p in written["figures"])
    assert "sub-01_model-netlayerA_stat-alpha_figure.png" in figures


def test_volume_figures_are_drawn_over_the_datasets_t1(tmp_path, rng, monkeypatch):
    """With NSD's T1_to_<space> under the responses' root, every volume figure sits on it and says so."""
    import neurodec.viz
    from neurodec.data.specs import load_spec

    _, responses, truth = simulate(rng, n_per_area=4)
    root = tmp_path / "nsd"
    t1_path = load_spec("nsd").path("anat_t1", root, subject=1, space="func1pt8mm")
    t1_path.parent.mkdir(parents=True)
    shape = responses.info["volume_shape"]
    nib.save(nib.Nifti1Image(np.linspace(100, 1000, np.prod(shape)).reshape(shape).astype(np.float32),
                             responses.info["affine"]), t1_path)
    notes = []
    real = neurodec.viz.plot_volume_map

    def recording(*args, **kwargs):
        figure = real(*args, **kwargs)
        notes.append(" ".join(t.get_text() for t in figure.texts))
        return figure

    monkeypatch.setattr(neurodec.viz, "plot_volume_map", recording)
    r2 = np.where(truth["areas"] == "A", 0.4, 0.05)
    for info, expected in (({**responses.info, "dataset": "nsd", "root": str(root)},
                            "Underlay: T1-weighted anatomy in the functional space (T1_to_func1pt8mm.nii.gz)."),
                           (responses.info, "No anatomical underlay available")):
        notes.clear()
        scores = EncodingScores(r=np.sqrt(r2), r2=r2, noise_ceiling=np.full(responses.n_units, 0.5),
                                units=responses.units, name="net/layerA", subject=responses.subject,
                                space=responses.space, info=info, n_test=40)
        written = write_encoding_outputs(scores, tmp_path / "out", report=False)
        assert written["figures"] and len(notes) >= 1
        assert all(expected in note for note in notes), notes
