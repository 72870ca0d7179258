"""BOLD5000 and Algonauts loaders refuse broken miniatures with errors naming the file at fault."""

from __future__ import annotations

import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest

from neurodec.data.algonauts import load_algonauts
from neurodec.data.bold5000 import load_bold5000
from neurodec.data.bold5000_stimuli import find_bold5000_stimuli, load_bold5000_stimuli
from neurodec.data.fixtures.algonauts import make_algonauts_miniature
from neurodec.data.fixtures.bold5000 import make_bold5000_miniature
from neurodec.data.specs import load_spec

from unreadable import deny_read

B5 = load_spec("bold5000")
ALG = load_spec("algonauts")


@pytest.fixture
def bold(data_dir):
    return data_dir, make_bold5000_miniature(data_dir, random_state=5, n_sessions=3)


def _load(root, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The affine of")
        return load_bold5000(root, 1, verbose=False, **kwargs)


def test_empty_stimulus_folders_raise_a_named_error_not_stopiteration(bold):
    root, planted = bold
    base = B5.path("stimuli", root, source="COCO", filename="x").parent.parent
    for folder in ("COCO", "ImageNet", "Scene"):
        shutil.rmtree(base / folder)
        (base / folder).mkdir()
    for call in (lambda: load_bold5000_stimuli(root, ids=planted["names"][:2]), lambda: find_bold5000_stimuli(root)):
        with pytest.raises(FileNotFoundError, match=rf"The BOLD5000 stimulus folders \['COCO', 'ImageNet', 'Scene'\] "
                                                    rf"under {base} hold no image file"):
            call()


def test_glmsingle_session_missing_in_the_middle(bold):
    root, _ = bold
    missing = B5.path("glmsingle_betas", root, subject=1, session=2)
    missing.unlink()
    with pytest.raises(
        FileNotFoundError,
        match=rf"CSI1: GLMsingle session\(s\) \[2\] have no beta file \(looked for {missing}\), but later session\(s\) "
        r"do \(present: \[1, 3\]\)",
    ):
        _load(root)


@pytest.mark.parametrize("bad", [1.5, "x"])
def test_fractional_sessions_are_refused_not_truncated(bold, bad):
    root, _ = bold
    with pytest.raises(ValueError, match=rf"The 'sessions' parameter of load_bold5000 must hold integers\. Got "
                                         rf"{bad!r} \({type(bad).__name__}\) at position 1"):
        _load(root, sessions=[1, bad])
    assert _load(root, sessions=[2.0]).trials["session"].unique().tolist() == [2]  # lossless: accepted


def test_empty_roi_mask_selected_is_an_error_and_unselected_a_warning(bold):
    root, _ = bold
    path = B5.path("roi_masks", root, subject=1, roi_name="LHPPA")
    img = nib.load(path)
    nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine).to_filename(path)
    with pytest.raises(ValueError, match=rf"'rois' parameter of load_bold5000 selects LHPPA, but its mask {path} holds "
                                         r"no voxel"):
        _load(root, rois=["LHPPA"], mask="rois")
    with pytest.warns(UserWarning) as record:
        resp = load_bold5000(root, 1, verbose=False)
    expected = f"BOLD5000 ROI mask {path} holds no voxel; its column roi:PPA labels no unit as LHPPA"
    assert any(str(w.message).startswith(expected) for w in record), [str(w.message) for w in record]
    assert "LHPPA" not in set(resp.units["roi:PPA"])


def test_nan_roi_betas_are_an_error_naming_the_file(bold):
    root, _ = bold
    path = B5.path("roi_betas", root, subject=1, roi_name="RHOPA")
    values = np.load(path)
    values[3, 1] = np.nan
    np.save(path, values)
    with pytest.raises(ValueError, match=rf"Beta file {path} holds 1 NaN or infinite value\(s\).*first: trial 3, "
                                         r"voxel 1"):
        _load(root, source="roi-betas")


def test_nan_glmsingle_betas_in_the_mask_are_an_error(bold):
    root, planted = bold
    path = B5.path("glmsingle_betas", root, subject=1, session=3)
    img = nib.load(path)
    data = np.asarray(img.dataobj).copy()
    i, j, k = np.argwhere(planted["brain_mask"])[0]
    data[i, j, k, 1] = np.inf
    nib.Nifti1Image(data, img.affine).to_filename(path)
    with pytest.raises(ValueError, match=rf"Beta file {path} holds 1 NaN or infinite value\(s\).*trial 1, voxel 0"):
        _load(root)


def test_unreadable_image_names_file(bold, monkeypatch):
    root, _ = bold
    path = B5.path("imgnames", root, subject=1)
    deny_read(monkeypatch, path)
    with pytest.raises(PermissionError, match=rf"BOLD5000 image names file {path} exists but cannot be read"):
        _load(root)


def test_algonauts_nan_responses_are_an_error(data_dir):
    make_algonauts_miniature(data_dir, random_state=1)
    path = ALG.path("training_fmri", data_dir, subject=1, hemi="rh")
    values = np.load(path)
    values[5, 2] = np.nan
    np.save(path, values)
    with pytest.raises(ValueError, match=rf"Beta file {path} holds 1 NaN or infinite value\(s\).*trial 5, vertex 2"):
        load_algonauts(data_dir, 1, verbose=False)
    assert load_algonauts(data_dir, 1, hemis=["lh"], verbose=False).shape == (6, 9)
