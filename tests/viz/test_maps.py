"""Unit values go back to the right voxels / vertices, on disk in exact NIfTI and MGH formats."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurodec.viz import bids_filename, bids_subject_label, derivatives_folder, write_surface_maps, write_volume_map

AFFINE = np.array([[1.8, 0, 0, -70.0], [0, 1.8, 0, -100.0], [0, 0, 1.8, -60.0], [0, 0, 0, 1]])


def test_volume_map_has_affine_shape_and_planted_values(tmp_path, rng):
    units = pd.DataFrame({"i": [0, 3, 4], "j": [1, 2, 0], "k": [2, 0, 1]})
    values = np.array([0.5, -0.25, 2.0])
    path = write_volume_map(values, units, {"affine": AFFINE, "volume_shape": (5, 4, 3)}, tmp_path / "m.nii.gz")
    image = nib.load(path)
    assert image.shape == (5, 4, 3)
    np.testing.assert_allclose(image.affine, AFFINE)
    data = image.get_fdata()
    np.testing.assert_allclose(data[units.i, units.j, units.k], values)
    assert np.isnan(data).sum() == 5 * 4 * 3 - 3
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind
    stacked = write_volume_map(np.stack([values, 2 * values]), units, {"affine": AFFINE, "volume_shape": (5, 4, 3)},
                               tmp_path / "m4.nii")
    assert nib.load(stacked).shape == (5, 4, 3, 2)


def test_volume_map_rejects_space_mismatch(tmp_path):
    units = pd.DataFrame({"i": [0, 9], "j": [0, 0], "k": [0, 0]})
    with pytest.raises(ValueError, match=r"outside the volume of shape \(5, 4, 3\)"):
        write_volume_map([1.0, 2.0], units, {"affine": AFFINE, "volume_shape": (5, 4, 3)}, tmp_path / "m.nii.gz")
    with pytest.raises(ValueError, match="info\\['affine'\\]"):
        write_volume_map([1.0, 2.0], units, {"volume_shape": (5, 4, 3)}, tmp_path / "m.nii.gz")
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        write_volume_map([1.0], units, {"affine": AFFINE, "volume_shape": (10, 4, 3)}, tmp_path / "m.nii.gz")
    with pytest.raises(ValueError, match="voxel index columns"):
        write_volume_map([1.0], pd.DataFrame({"channel": ["MEG0111"]}), {}, tmp_path / "m.nii.gz")


def test_surface_maps_per_hemisphere(tmp_path):
    units = pd.DataFrame({"hemi": ["lh", "lh", "rh"], "vertex": [0, 7, 3]})
    info = {"n_vertices": {"lh": 10, "rh": 12}}
    paths = write_surface_maps([1.0, 2.0, 3.0], units, info, tmp_path / "sub-01_hemi-{hemi}_stat.mgh")
    assert sorted(p.name for p in paths.values()) == ["sub-01_hemi-L_stat.mgh", "sub-01_hemi-R_stat.mgh"]
    lh, rh = (nib.load(paths[h]) for h in ("lh", "rh"))
    assert isinstance(lh, nib.MGHImage) and lh.shape == (10, 1, 1) and rh.shape == (12, 1, 1)
    assert lh.get_data_dtype() == np.dtype(">f4")  # MGH stores big-endian float32
    np.testing.assert_allclose(lh.get_fdata()[[0, 7], 0, 0], [1.0, 2.0])
    assert rh.get_fdata()[3, 0, 0] == 3.0 and np.isnan(rh.get_fdata()[0, 0, 0])
    with pytest.raises(ValueError, match="outside its 10 vertices"):
        write_surface_maps([1.0], pd.DataFrame({"hemi": ["lh"], "vertex": [10]}), info, tmp_path / "{hemi}.mgh")
    with pytest.raises(ValueError, match="'\\{hemi\\}'"):
        write_surface_maps([1.0, 2.0, 3.0], units, info, tmp_path / "lh.mgh")


def test_bids_names_and_dataset_description(tmp_path):
    import json

    assert [bids_subject_label(s) for s in ("subj01", "sub-02", "CSI1", "BIGMEG1")] == ["01", "02", "CSI1", "BIGMEG1"]
    name = bids_filename("subj01", "statmap", ".nii.gz", stat="r2_normalized", space="func1pt8mm", model="resnet50/layer3")
    assert name == "sub-01_space-func1pt8mm_stat-r2normalized_model-resnet50layer3_statmap.nii.gz"
    folder = derivatives_folder(tmp_path, "subj01")
    assert folder == tmp_path / "derivatives" / "neurodec" / "sub-01" / "func"
    description = json.loads((tmp_path / "derivatives" / "neurodec" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["GeneratedBy"][0]["Name"] == "neurodec"


def test_volume_mosaic_separates_nan_from_zero_and_reads_left_to_right():
    from neurodec.viz import plot_volume_map

    # x runs right-to-left in this affine (radiological storage): voxel i=0 is the rightmost.
    flipped = np.array([[-2.0, 0, 0, 10], [0, 2.0, 0, -20], [0, 0, 2.0, 0], [0, 0, 0, 1]])
    units = pd.DataFrame({"i": [0, 1, 2, 0], "j": [0, 0, 0, 1], "k": [1, 1, 1, 1]})
    values = np.array([0.8, 0.0, np.nan, -0.4])
    figure = plot_volume_map(values, units, {"affine": flipped, "volume_shape": (3, 2, 3)}, title="r2 map")
    ax = figure.axes[0]
    background, scores = (np.ma.filled(im.get_array().astype(float), np.nan) for im in ax.get_images())
    # Rows are y (posterior at the bottom), columns x from left to right: i=0 ends on the right.
    np.testing.assert_allclose(scores, [[np.nan, 0.0, 0.8], [np.nan, np.nan, -0.4]])
    # Every unit, NaN included, has the grey underlay; outside the units there is none.
    np.testing.assert_array_equal(np.isfinite(background), [[True, True, True], [False, False, True]])
    assert figure.get_suptitle() == "r2 map" and ax.get_title() == "z = 2 mm"
    assert any(a.get_label() == "<colorbar>" for a in figure.axes)
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["no value (NaN)"]


def test_categorical_volume_map_has_one_colour_per_category():
    from neurodec.viz import plot_volume_map

    units = pd.DataFrame({"i": [0, 1, 2], "j": [0, 0, 1], "k": [0, 1, 1]})
    info = {"affine": AFFINE, "volume_shape": (3, 2, 2)}
    figure = plot_volume_map([0, 2, np.nan], units, info, categories=["layer1", "layer2", "layer3"])
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["layer1", "layer2", "layer3", "no value (NaN)"]
    image = figure.axes[0].get_images()[1]
    assert image.cmap.N == 3 and image.norm(2) == pytest.approx(5 / 6)
    assert len([a for a in figure.axes if a.get_visible()]) == 2  # one panel per slice holding units
    with pytest.raises(ValueError, match="needs kind='stat'"):
        plot_volume_map([0, 1, 2], units, info, kind="glass", categories=["a", "b", "c"])


def _texts(ax):
    return {t.get_text() for t in ax.texts}


def test_volume_mosaic_over_an_anatomical_underlay_is_oriented_and_labelled(rng):
    from neurodec.viz import plot_volume_map

    units = pd.DataFrame({"i": [1, 2, 3, 2], "j": [1, 1, 2, 2], "k": [0, 1, 1, 2]})
    info = {"affine": AFFINE, "volume_shape": (5, 4, 3)}
    anatomy = nib.Nifti1Image(rng.uniform(100, 200, size=(5, 4, 3)).astype(np.float32), AFFINE)
    figure = plot_volume_map([0.2, np.nan, -0.1, 0.4], units, info, label="R2 (fraction of variance)",
                             underlay=anatomy, underlay_name="T1 (T1_to_func1pt8mm.nii.gz)")
    panels = [ax for ax in figure.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert len(panels) == 3
    for ax in panels:  # orientation on every panel, anatomy under the values
        assert {"L", "R", "A", "P"} <= _texts(ax)
        underlay = np.ma.filled(ax.get_images()[0].get_array().astype(float), np.nan)
        assert np.isfinite(underlay).all() and underlay.min() >= 100
    colorbar = next(a for a in figure.axes if a.get_label() == "<colorbar>")
    assert "R2" in colorbar.get_ylabel()
    notes = " ".join(t.get_text() for t in figure.texts)
    assert "Underlay: T1 (T1_to_func1pt8mm.nii.gz)" in notes and "left on the left" in notes
    # An underlay on another grid is resampled to the map's grid.
    coarse = nib.Nifti1Image(np.full((3, 2, 2), 150.0, dtype=np.float32), AFFINE @ np.diag([2.0, 2.0, 2.0, 1.0]))
    figure = plot_volume_map([0.2, 0.1, -0.1, 0.4], units, info, underlay=coarse)
    assert figure.axes[0].get_images()[0].get_array().shape == figure.axes[0].get_images()[-1].get_array().shape


def test_volume_mosaic_without_underlay_says_so():
    from neurodec.viz import plot_volume_map

    units = pd.DataFrame({"i": [0, 1], "j": [0, 1], "k": [0, 0]})
    figure = plot_volume_map([0.5, 1.5], units, {"affine": AFFINE, "volume_shape": (2, 2, 1)},
                             label="log10 alpha", cmap="viridis", symmetric=False)
    assert "No anatomical underlay available" in " ".join(t.get_text() for t in figure.texts)
    assert {"L", "R"} <= _texts(figure.axes[0])
    image = figure.axes[0].get_images()[-1]
    assert image.norm.vmin == pytest.approx(0.5) and image.norm.vmax == pytest.approx(1.5)


def test_find_underlay_uses_the_dataset_anatomy(tmp_path):
    from neurodec.viz import find_underlay

    info = {"dataset": "nsd", "root": str(tmp_path)}
    assert find_underlay(info, "subj01", "func1pt8mm") is None
    folder = tmp_path / "nsddata" / "ppdata" / "subj01" / "func1pt8mm"
    folder.mkdir(parents=True)
    image = nib.Nifti1Image(np.ones((2, 2, 2), np.float32), AFFINE)
    nib.save(image, folder / "mean.nii.gz")
    assert find_underlay(info, "subj01", "func1pt8mm")[0].name == "mean.nii.gz"
    nib.save(image, folder / "T1_to_func1pt8mm.nii.gz")
    path, what = find_underlay(info, "subj01", "func1pt8mm")
    assert path.name == "T1_to_func1pt8mm.nii.gz" and "T1" in what
    assert find_underlay({}, "sub-01", "T1w") is None
    template, what = find_underlay({}, "sub-01", "MNI152NLin2009cAsym")
    assert "MNI152" in what and template.ndim == 3


def _nsd_miniature(root, **anatomy):
    from neurodec.data.fixtures.nsd import NSDSubjectData, make_nsd_design, write_nsd

    rng = np.random.default_rng(0)
    design = make_nsd_design(n_images=8, n_shared=2, n_sessions=1, trials_per_session=6, random_state=rng)
    subject = NSDSubjectData(betas=[np.zeros((3, 4, 2, 6))], affine=AFFINE, **anatomy)
    images = np.zeros((8, 4, 4, 3), dtype=np.uint8)
    return write_nsd(root, design=design, images=images, subjects={1: subject}, formats=("nifti",))


def test_find_underlay_resolves_the_spec_entry_of_a_miniature(tmp_path):
    from neurodec.data.specs import load_spec
    from neurodec.viz import find_underlay

    without = _nsd_miniature(tmp_path / "without")
    assert find_underlay({"dataset": "nsd", "root": str(without)}, "subj01", "func1pt8mm") is None
    root = _nsd_miniature(tmp_path / "with", t1=np.arange(24.0).reshape(3, 4, 2), mean_epi=np.ones((3, 4, 2)))
    info = {"dataset": "nsd", "root": str(root)}
    expected = load_spec("nsd").path("anat_t1", root, subject=1, space="func1pt8mm")
    path, what = find_underlay(info, "subj01", "func1pt8mm")
    assert path == expected and what == "T1-weighted anatomy in the functional space (T1_to_func1pt8mm.nii.gz)"
    assert find_underlay(info, 1, "func1pt8mm")[0] == expected  # a subject number works too
    assert find_underlay(info, "subj02", "func1pt8mm") is None  # another subject's anatomy is not borrowed
    assert find_underlay(info, "subj01", "func1mm") is None
    assert find_underlay(info, "sub-CSI1", "func1pt8mm") is None  # not an NSD subject name


def test_sidecar_names_and_keys(tmp_path):
    import json

    from neurodec.viz import sidecar_path, write_sidecar
    from neurodec.viz.derivatives import SIDECAR_KEYS

    assert sidecar_path(tmp_path / "a_statmap.nii.gz").name == "a_statmap.json"
    assert sidecar_path(tmp_path / "a_hemi-L_statmap.mgh").name == "a_hemi-L_statmap.json"
    path = write_sidecar(tmp_path / "m_statmap.nii.gz", {"Description": "a map", "Units": "unitless"})
    record = json.loads(path.read_text())
    assert set(SIDECAR_KEYS) <= set(record) and record["Description"] == "a map" and record["Model"] == "n/a"
    assert record["GeneratedBy"][0]["Name"] == "neurodec"


def test_surface_panels_name_hemisphere_and_view_and_colorbar_is_labelled():
    from neurodec.viz import plot_surface_map

    n = 10242
    units = pd.DataFrame({"hemi": ["lh"] * 3 + ["rh"] * 3, "vertex": [0, 5, 9] * 2})
    figure = plot_surface_map(np.linspace(-0.5, 0.5, 6), units, {"n_vertices": n}, title="r", label="Pearson r (unitless)")
    texts = {t.get_text() for ax in figure.axes for t in ax.texts}
    assert {"left hemisphere, lateral", "right hemisphere, medial"} <= texts
    assert "Pearson r (unitless)" in {ax.get_ylabel() for ax in figure.axes}
