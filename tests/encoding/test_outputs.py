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
