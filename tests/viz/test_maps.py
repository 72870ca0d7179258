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
