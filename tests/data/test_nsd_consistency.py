"""load_nsd never drops, reorders or mislabels trials silently: each broken miniature raises a named error."""

from __future__ import annotations

import os
import re

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io

from neurodec.data import _checks, load_nsd, load_nsd_design, load_nsd_stimuli
from neurodec.data.fixtures.nsd import write_nsd_session_betas
from neurodec.data.stimuli import HDF5Images

from nsd_miniature import FIELDS, SPEC, SURFACE, make_mini
from unreadable import deny_read


@pytest.fixture
def mini(tmp_path):
    return make_mini(tmp_path)


def _session(root, session, key="betas_volume_nifti"):
    return SPEC.path(key, root, session=session, **FIELDS)


def _drop_stimpattern(root):
    path = SPEC.path("design", root)
    mat = scipy.io.loadmat(path)
    scipy.io.savemat(path, {k: mat[k] for k in ("masterordering", "subjectim", "sharedix")})
    assert load_nsd_design(root).stimpattern is None


def _behaviour(root):
    path = SPEC.path("behavior", root, subject=1)
    return path, pd.read_csv(path, sep="\t")


# ------------------------------------------------------------------ sessions


def test_session_missing_in_the_middle_is_an_error_not_a_silent_drop(mini):
    for key in ("betas_volume_nifti", "betas_volume_hdf5"):
        _session(mini.root, 2, key).unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"Subject 1 \(func1pt8mm, betas_fithrf_GLMdenoise_RR\): session\(s\) \[2\] have no beta file \(looked "
        r"for \S*betas_session02.nii.gz\), but later session\(s\) do \(present: \[1, 3\]\).*sessions=\[\.\.\.\]",
    ):
        load_nsd(mini.root, 1, verbose=False)
    # Chosen explicitly, the other sessions load at their true place in the design.
    resp = load_nsd(mini.root, 1, sessions=[1, 3], verbose=False, rois=[])
    np.testing.assert_array_equal(resp.trials["trial_index"], np.r_[0:6, 12:18])
    np.testing.assert_array_equal(resp.stimulus_ids, mini.design.trials(1)["stimulus_id"].to_numpy()[np.r_[0:6, 12:18]])


def test_short_session_without_stimpattern_or_behaviour_is_refused(mini):
    _drop_stimpattern(mini.root)
    behaviour = SPEC.path("behavior", mini.root, subject=1)
    behaviour.unlink()
    write_nsd_session_betas(mini.root, 1, 1, mini.subjects[1].betas[0][..., :5], affine=np.eye(4))
    for sessions in (None, [3]):  # session 3's place depends on session 1's length even when 1 is not loaded
        with pytest.raises(ValueError) as info:
            load_nsd(mini.root, 1, sessions=sessions, verbose=False)
        message = str(info.value)
        assert "Cannot tell which design trials the betas of subject 1 hold" in message
        assert f"{SPEC.path('design', mini.root)} has no 'stimpattern'" in message
        assert f"there is no behaviour file ({behaviour})" in message
        assert "betas_session01.hdf5: 5, betas_session02.hdf5: 6, betas_session03.hdf5: 6" in message
        assert "Provide the design file with its 'stimpattern' variable or the subject's behav/responses.tsv" in message


def test_equal_sessions_without_stimpattern_or_behaviour_still_load(mini):
    _drop_stimpattern(mini.root)
    SPEC.path("behavior", mini.root, subject=1).unlink()
    resp = load_nsd(mini.root, 1, sessions=[3], verbose=False, rois=[])
    np.testing.assert_array_equal(resp.trials["trial_index"], np.arange(12, 18))


def test_earlier_session_file_needed_for_counting(mini):
    _drop_stimpattern(mini.root)
    SPEC.path("behavior", mini.root, subject=1).unlink()
    for key in ("betas_volume_nifti", "betas_volume_hdf5"):
        _session(mini.root, 1, key).unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"Cannot place the trials of session 3 of subject 1: \S*nsd_expdesign.mat has no 'stimpattern' and "
        r"there is no behaviour file .*counted from its beta file: Session 1 of subject 1: beta file "
        r"\S*betas_session01.nii.gz does not exist",
    ):
        load_nsd(mini.root, 1, sessions=[3], verbose=False)


# -------------------------------------------------------------- trial counts


def test_stimpattern_and_behaviour_file_disagree(mini):
    path, table = _behaviour(mini.root)
    table.drop(index=3).to_csv(path, sep="\t", index=False)  # session 1 loses a trial
    with pytest.raises(ValueError) as info:
        load_nsd(mini.root, 1, sessions=[2], verbose=False)
    message = str(info.value)
    assert (f"disagree between the design's stimpattern ({SPEC.path('design', mini.root)}) and the behaviour "
            f"file ({path})") in message
    assert "stimpattern: session 1: 6; behaviour file: session 1: 5" in message


def test_beta_file_disagrees_with_behaviour_file_without_stimpattern(mini):
    _drop_stimpattern(mini.root)
    write_nsd_session_betas(mini.root, 1, 2, mini.subjects[1].betas[1][..., :4], affine=np.eye(4), formats=("nifti",))
    path, _ = _behaviour(mini.root)
    with pytest.raises(
        ValueError,
        match=rf"Session 2: beta file \S*betas_session02.nii.gz has 4 trials, but the behaviour file "
        rf"\({path}\) lists 6\.",
    ):
        load_nsd(mini.root, 1, format="nifti", verbose=False)


def test_behaviour_file_without_a_session_that_has_betas(mini):
    path, table = _behaviour(mini.root)
    table[table["SESSION"] < 3].to_csv(path, sep="\t", index=False)
    with pytest.raises(
        ValueError,
        match=rf"Session 3: beta file \S*betas_session03.hdf5 has 6 trials, but the behaviour file \({path}\) "
        r"lists 0; stimpattern \S*nsd_expdesign.mat: 6",
    ):
        load_nsd(mini.root, 1, verbose=False)


def test_behaviour_image_disagreeing_names_session_trial_and_ids(mini):
    path, table = _behaviour(mini.root)
    table.loc[8, "73KID"] += 1  # session 2, trial 2
    table.to_csv(path, sep="\t", index=False)
    expected = int(mini.design.trials(1)["stimulus_id"].iloc[8]) + 1
    with pytest.raises(
        ValueError,
        match=rf"behaviour file {path}: its 73KID column disagrees with the design \(\S*nsd_expdesign.mat\) on 1 "
        rf"trial\(s\) of session 2; first: trial 2 of the session shows 73KID {expected + 1} in the behaviour file "
        rf"but 73k id {expected} \(1-based\) in the design",
    ):
        load_nsd(mini.root, 1, sessions=[2], verbose=False)


@pytest.mark.parametrize("keep_twin", [True, False])
def test_transposed_hdf5_is_named_not_reported_as_a_trial_count(mini, keep_twin):
    h5 = _session(mini.root, 1, "betas_volume_hdf5")
    with h5py.File(h5, "w") as f:  # (X, Y, Z, n_trials) instead of (n_trials, Z, Y, X)
        f.create_dataset("betas", data=np.zeros((3, 4, 2, 6), np.int16))
    if not keep_twin:
        _session(mini.root, 1).unlink()
    with pytest.raises(ValueError) as info:
        load_nsd(mini.root, 1, format="hdf5", verbose=False)
    message = str(info.value)
    assert f"Beta file {h5}: dataset 'betas' has shape (3, 4, 2, 6), in (X, Y, Z, n_trials) order" in message
    assert "hold (n_trials, Z, Y, X)" in message and "looks transposed" in message
    why = "its NIfTI twin betas_session01.nii.gz is (X, Y, Z, n_trials) = (3, 4, 2, 6), so it should be (6, 2, 4, 3)"
    assert (why if keep_twin else "its last axis has the 6 trials the design expects, so it should come first") in message


# ------------------------------------------------------------------ ROIs


def test_empty_roi_selections_are_errors(mini):
    roi = SPEC.path("roi_volume", mini.root, roi="floc-faces", **FIELDS)
    labels = np.asarray(nib.load(roi).dataobj)
    absent = sorted(set(range(1, 6)) - set(np.unique(labels).tolist()))
    names = ["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"]
    if absent:
        name = names[absent[0] - 1]
    else:  # make one label absent
        name = "aTL-faces"
        nib.Nifti1Image(np.where(labels == 5, 0, labels).astype(np.int16), np.eye(4)).to_filename(roi)
    with pytest.raises(ValueError, match=rf"The 'roi' \('floc-faces', \['{name}'\]\) selects no unit: no voxel of "
                                         rf"{roi} carries label"):
        load_nsd(mini.root, 1, roi=("floc-faces", [name]), verbose=False)
    nib.Nifti1Image(np.full((3, 4, 2), -1, np.int16), np.eye(4)).to_filename(roi)
    with pytest.raises(ValueError, match=rf"The 'roi' 'floc-faces' selects no unit: {roi} has no label > 0 "
                                         r"\(values found: \[-1\]"):
        load_nsd(mini.root, 1, roi="floc-faces", verbose=False)
    with pytest.raises(ValueError, match=r"boolean mask given as 'roi' selects no unit \(all 24 values are False\)"):
        load_nsd(mini.root, 1, roi=np.zeros((3, 4, 2), bool), verbose=False)


# ------------------------------------------------------------------ values


def test_nan_surface_betas_are_an_error_naming_file_trial_and_vertex(mini):
    lh = SPEC.path("betas_surface", mini.root, hemi="lh", session=2, **SURFACE)
    data = np.asarray(nib.load(lh).dataobj).copy()
    data[1, 0, 0, 4] = np.nan
    nib.MGHImage(data, np.eye(4)).to_filename(lh)
    with pytest.raises(
        ValueError, match=rf"Beta file {lh} holds 1 NaN or infinite value\(s\) in the units read \(first: trial 4, "
        r"vertex 1 of the selection\); betas must be finite",
    ):
        load_nsd(mini.root, 1, space="fsaverage", verbose=False)
    keep = np.ones(8, bool)
    keep[1] = False  # leave the NaN vertex out: nothing non-finite is read
    resp = load_nsd(mini.root, 1, space="fsaverage", roi=keep, verbose=False)
    assert resp.shape == (18, 7) and np.isfinite(resp.data).all()


# ------------------------------------------------------------------ ids


@pytest.mark.parametrize("bad", [5.7, "5.7", "abc", True, float("nan"), None])
def test_non_integer_stimulus_ids_are_refused(mini, bad):
    expected = rf"must hold integers\. Got {re.escape(repr(bad))} \({type(bad).__name__}\) at position 1"
    with pytest.raises(ValueError, match=rf"The 'ids' parameter of load_nsd_stimuli {expected}"):
        load_nsd_stimuli(mini.root, ids=[0, bad])


def test_lossless_ids_are_accepted(mini):
    stim = load_nsd_stimuli(mini.root, ids=[np.int64(1), 2.0, "3", np.float32(4.0)])
    assert stim.ids == [1, 2, 3, 4] and all(type(i) is int for i in stim.ids)
    np.testing.assert_array_equal(stim.get_image(2), mini.images[2])


def test_image_sources_refuse_fractional_keys(mini):
    source = HDF5Images(SPEC.path("stimuli", mini.root), "imgBrick")
    with pytest.raises(ValueError, match=r"key of HDF5Images.read \(\S*nsd_stimuli.hdf5\) must hold integers\. "
                                         r"Got 2.5 \(float\)"):
        source.read(2.5)
    np.testing.assert_array_equal(source.read(2.0), mini.images[2])


@pytest.mark.parametrize("bad", ["5.7", "", "abc"])
def test_behaviour_ids_are_never_truncated(mini, bad):
    path, _ = _behaviour(mini.root)
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    row = lines[4].split("\t")
    row[header.index("73KID")] = bad
    lines[4] = "\t".join(row)
    path.write_text("\n".join(lines) + "\n")
    shown = repr(float(bad)) if bad == "5.7" else ("nan" if bad == "" else repr(bad))
    with pytest.raises(ValueError, match=rf"NSD behaviour file {path}: column '73KID' must hold whole numbers "
                                         rf"\(1-based indices\)\. Got {re.escape(shown)} in data row 4"):
        load_nsd(mini.root, 1, verbose=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), (5.0, 5), ("5", 5), (" 7 ", 7), (np.int16(5), 5), (np.float64(-2.0), -2), (b"9", 9)],
)
def test_as_integer_ids_lossless(value, expected):
    assert _checks.as_integer_ids([value], "x") == [expected]


# ------------------------------------------------------------- permissions


@pytest.mark.parametrize(
    ("target", "what"),
    [("design", "NSD design file"), ("behavior", "NSD behaviour file"), ("beta", "Beta file"),
     ("roi", "ROI file")],
)
def test_unreadable_files_raise_permission_errors_naming_them(mini, monkeypatch, target, what):
    path = {
        "design": SPEC.path("design", mini.root),
        "behavior": SPEC.path("behavior", mini.root, subject=1),
        "beta": _session(mini.root, 2, "betas_volume_hdf5"),
        "roi": SPEC.path("roi_volume", mini.root, roi="nsdgeneral", **FIELDS),
    }[target]
    deny_read(monkeypatch, path)
    with pytest.raises(PermissionError, match=rf"{what} {path} exists but cannot be read: permission denied"):
        load_nsd(mini.root, 1, roi="nsdgeneral", verbose=False)


def test_unlistable_beta_folder_is_not_reported_as_missing_files(mini, monkeypatch):
    folder = _session(mini.root, 1).parent
    real_scandir = os.scandir

    def fake_scandir(path="."):
        if os.fspath(path) == os.fspath(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(_checks.os, "scandir", fake_scandir)
    with pytest.raises(PermissionError, match=rf"NSD beta folder {folder} cannot be listed: permission denied"):
        load_nsd(mini.root, 1, verbose=False)
