"""`neurodec check-data` says "usable" only for roots the loader loads correctly, and refuses the rest."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from neurodec.cli import app
from neurodec.data import load_nsd
from neurodec.data.checks import check_dataset
from neurodec.data.fixtures.algonauts import make_algonauts_miniature
from neurodec.data.fixtures.bold5000 import make_bold5000_miniature
from neurodec.data.fixtures.nsd import write_nsd_session_betas
from neurodec.data.specs import load_spec

from nsd_miniature import FIELDS, SPEC, SURFACE, make_mini


@pytest.fixture
def mini(tmp_path):
    return make_mini(tmp_path)


def _cli(*args):
    return CliRunner().invoke(app, ["check-data", *map(str, args)])


def _problems(root, **kwargs):
    report = check_dataset("nsd", root, **kwargs)
    assert not report.usable
    return "\n".join(report.problems)


def test_intact_root_is_usable_and_lists_subjects_sessions_and_atlases(mini):
    result = _cli("nsd", mini.root)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "  found    design: 1 subject(s), 18 trials, 3 sessions in stimpattern" in lines
    for fmt in ("", " (format='hdf5')", " (format='nifti')"):  # the default, then each format alone
        assert (f"  found    subj01 func1pt8mm/betas_fithrf_GLMdenoise_RR{fmt}: sessions 1-3, 18 trials "
                "(trials per session from stimpattern), units (3, 4, 2)") in lines
    assert ("  found    subj01 fsaverage/betas_fithrf_GLMdenoise_RR: sessions 1-3, 18 trials (trials per session "
            "from stimpattern), units (8,)") in lines
    assert "  found    subj01 func1pt8mm ROI atlases: floc-faces, nsdgeneral, prf-visualrois" in lines
    assert lines[-1] == "usable"
    load_nsd(mini.root, 1, verbose=False)  # and the loader agrees
    assert _cli("NSD", mini.root).output == result.output  # the name as papers write it


def test_trial_count_disagreement_between_beta_file_and_design(mini):
    write_nsd_session_betas(mini.root, 1, 2, mini.subjects[1].betas[1][..., :5], affine=np.eye(4), formats=("nifti",))
    problems = _problems(mini.root)
    nifti = SPEC.path("betas_volume_nifti", mini.root, session=2, **FIELDS)
    assert (f"subj01 func1pt8mm/betas_fithrf_GLMdenoise_RR (format='nifti'): Session 2: beta file {nifti} has 5 "
            f"trials, but the design's stimpattern ({SPEC.path('design', mini.root)}) lists 6") in problems
    assert problems.count("\n") == 0  # the default reads the intact HDF5 twins: only format='nifti' is refused
    result = _cli("nsd", mini.root)
    assert result.exit_code == 1 and "PROBLEM  subj01 func1pt8mm" in result.output
    assert result.output.splitlines()[-1].startswith("NOT usable")


def test_behaviour_file_disagreeing_with_stimpattern(mini):
    path = SPEC.path("behavior", mini.root, subject=1)
    table = pd.read_csv(path, sep="\t")
    table.drop(index=[0, 1]).to_csv(path, sep="\t", index=False)
    problems = _problems(mini.root)
    assert f"and the behaviour file ({path}): stimpattern: session 1: 6; behaviour file: session 1: 4" in problems


def test_missing_session_in_the_middle(mini):
    for key in ("betas_volume_nifti", "betas_volume_hdf5"):
        SPEC.path(key, mini.root, session=2, **FIELDS).unlink()
    report = check_dataset("nsd", mini.root)
    assert not report.usable
    assert report.problems[0].startswith(
        "subj01 func1pt8mm/betas_fithrf_GLMdenoise_RR: Subject 1 (func1pt8mm, betas_fithrf_GLMdenoise_RR): "
        "session(s) [2] have no beta file"
    )
    assert any(n.startswith("subj01 func1pt8mm/betas_fithrf_GLMdenoise_RR (format='nifti'): Subject 1") and
               n.endswith("(format='nifti' cannot load it; the default format='auto' is checked on its own)")
               for n in report.notes)


def test_partial_hdf5_twins_are_noted_while_the_default_loads(mini):
    SPEC.path("betas_volume_hdf5", mini.root, session=2, **FIELDS).unlink()  # auto reads session 2's NIfTI
    report = check_dataset("nsd", mini.root)
    assert report.usable, report.problems
    assert any("(format='hdf5'): Subject 1" in n and "session(s) [2] have no beta file" in n for n in report.notes)
    assert load_nsd(mini.root, 1, verbose=False).n_trials == 18


def test_nan_betas_are_reported_and_the_scan_is_sampled(mini):
    lh = SPEC.path("betas_surface", mini.root, hemi="lh", session=3, **SURFACE)
    data = np.asarray(nib.load(lh).dataobj).copy()
    data[2, 0, 0, 2] = np.nan
    nib.MGHImage(data, np.eye(4)).to_filename(lh)
    assert (f"subj01 fsaverage/betas_fithrf_GLMdenoise_RR: Beta file {lh} holds 1 NaN or infinite value(s) in the "
            "units read (first: trial 2, vertex 2") in _problems(mini.root)
    # Two sampled trials (0 and 5) miss trial 2: the documented price of a fast scan ...
    assert check_dataset("nsd", mini.root, nan_trials=2).usable
    # ... which a full scan, or the CLI's --nan-trials 0, does not pay.
    assert "holds 1 NaN" in _problems(mini.root, nan_trials=None)
    result = _cli("nsd", mini.root, "--nan-trials", "0")
    assert result.exit_code == 1 and "sampled" not in result.output and "holds 1 NaN" in result.output
    assert _cli("nsd", mini.root, "--nan-trials", "-1").exit_code == 2


def test_empty_roi_is_reported_and_empty_labels_noted(mini):
    path = SPEC.path("roi_volume", mini.root, roi="floc-faces", **FIELDS)
    nib.Nifti1Image(np.full((3, 4, 2), -1, np.int16), np.eye(4)).to_filename(path)
    report = check_dataset("nsd", mini.root)
    assert not report.usable
    assert report.problems == [
        f"subj01 func1pt8mm ROI 'floc-faces': The 'roi' 'floc-faces' selects no unit: {path} has no label > 0 "
        "(values found: [-1]; -1 is outside the atlas, 0 unlabelled)."
    ]
    assert "subj01 func1pt8mm ROI atlases: nsdgeneral, prf-visualrois" in report.found
    labels = np.asarray(nib.load(SPEC.path("roi_volume", mini.root, roi="prf-visualrois", **FIELDS)).dataobj)
    absent = [name for k, name in enumerate(["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"], 1) if k not in labels]
    assert absent  # the miniature's random labels leave some out: they are noted, not refused
    assert any(f"ROI 'prf-visualrois': label(s) {absent} of its colour table cover no unit" in n for n in report.notes)


def test_transposed_hdf5_is_reported_as_transposed(mini):
    import h5py

    h5 = SPEC.path("betas_volume_hdf5", mini.root, session=1, **FIELDS)
    with h5py.File(h5, "w") as f:
        f.create_dataset("betas", data=np.zeros((3, 4, 2, 6), np.int16))
    problems = _problems(mini.root)
    expected = f"Beta file {h5}: dataset 'betas' has shape (3, 4, 2, 6), in (X, Y, Z, n_trials) order"
    assert f"subj01 func1pt8mm/betas_fithrf_GLMdenoise_RR: {expected}" in problems  # the default reads it
    assert f"(format='hdf5'): {expected}" in problems


def test_bold5000_image_names_disagreeing_with_beta_files(data_dir):
    make_bold5000_miniature(data_dir, random_state=2)
    spec = load_spec("bold5000")
    assert check_dataset("bold5000", data_dir).usable
    names = spec.path("imgnames", data_dir, subject=1)
    lines = names.read_text().splitlines()
    names.write_text("\n".join(lines[:-1]) + "\n")
    report = check_dataset("bold5000", data_dir)
    assert not report.usable
    joined = "\n".join(report.problems)
    assert f"CSI1 glmsingle: BOLD5000 image names file {names} lists 11 trials but the 2 GLMsingle beta files hold " \
           "12" in joined
    result = _cli("bold5000", data_dir)
    assert result.exit_code == 1 and "PROBLEM  CSI1 glmsingle" in result.output


def test_bold5000_presented_image_without_stimulus_file(data_dir):
    make_bold5000_miniature(data_dir, random_state=2)
    spec = load_spec("bold5000")
    first = spec.path("imgnames", data_dir, subject=1).read_text().splitlines()[0]
    (image,) = [p for _, p in spec.find("stimuli", data_dir) if p.name == first]
    image.unlink()
    report = check_dataset("bold5000", data_dir)
    assert f"CSI1: 1 presented image(s) have no stimulus file: ['{first}']" in report.problems


def test_algonauts_row_mismatch(data_dir):
    make_algonauts_miniature(data_dir, random_state=0)
    path = load_spec("algonauts").path("training_fmri", data_dir, subject=1, hemi="lh")
    assert check_dataset("algonauts", data_dir).found[0].startswith("subj01: 6 training images, 3 test images")
    np.save(path, np.zeros((5, 9), np.float32))
    report = check_dataset("algonauts", data_dir)
    assert not report.usable
    assert report.problems[0].startswith(f"subj01: Algonauts fMRI file {path} must have shape (n_train_images, "
                                         "n_vertices) with 6 rows")
