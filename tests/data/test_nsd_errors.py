"""load_nsd and friends fail clearly on bad arguments and broken files."""

from __future__ import annotations

import gzip
import h5py
import nibabel as nib
import numpy as np
import pytest
import scipy.io

from neurodec.data import load_nsd, load_nsd_design, load_nsd_roi
from neurodec.data.fixtures.nsd import make_nsd_miniature, write_nsd_session_betas
from neurodec.data.specs import load_spec

SPEC = load_spec("nsd")
FIELDS = dict(subject=1, space="func1pt8mm", beta_version="betas_fithrf_GLMdenoise_RR")


def _make(root):
    return make_nsd_miniature(root, shape=(3, 4, 2), n_sessions=2, trials_per_session=6, n_vertices=4)


@pytest.fixture
def mini(tmp_path):
    """A fresh miniature that a test may break."""
    return _make(tmp_path)


@pytest.fixture(scope="module")
def intact(tmp_path_factory):
    """A miniature no test modifies."""
    return _make(tmp_path_factory.mktemp("nsd_intact"))


def _session(root, session, key="betas_volume_nifti"):
    return SPEC.path(key, root, session=session, **FIELDS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"space": "func2mm"}, r"'space' parameter of load_nsd must be one of \['func1pt8mm'"),
        ({"beta_version": "betas_glm"}, "'beta_version' parameter"),
        ({"format": "mgz"}, "'format' parameter"),
        ({"subject": 2}, r"'subject' parameter must be an integer from 1 to 1 .*Got 2"),
        ({"subject": 0}, "from 1 to 1"),
        ({"sessions": [3]}, r"1-based numbers from 1 to 2. Got 3"),
        ({"sessions": [0]}, "Got 0"),
        ({"roi": "nsdgenral"}, r"Unknown NSD ROI 'nsdgenral'.*Close matches: \['nsdgeneral'\]"),
        ({"roi": ("floc-faces", ["FFA1"])}, r"Unknown label\(s\) \['FFA1'\].*Close matches: \['FFA-1'"),
        ({"roi": np.ones((3, 4, 3), bool)}, r"boolean array of shape \(3, 4, 2\)"),
        ({"rois": ["floc-bodies"]}, "Unknown NSD ROI 'floc-bodies'"),
    ],
)
def test_bad_arguments(intact, kwargs, match):
    kwargs = {"subject": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        load_nsd(intact.root, verbose=False, **kwargs)


def test_missing_session_file(mini):
    for key in ("betas_volume_nifti", "betas_volume_hdf5"):
        _session(mini.root, 2, key).unlink()
    with pytest.raises(FileNotFoundError, match=r"Session 2 of subject 1: beta file .*betas_session02.nii.gz"):
        load_nsd(mini.root, 1, sessions=[1, 2], verbose=False)
    assert load_nsd(mini.root, 1, verbose=False).trials["session"].unique().tolist() == [1]
    _session(mini.root, 1, "betas_volume_hdf5").unlink()
    with pytest.raises(FileNotFoundError, match="betas_session01.hdf5 does not exist"):
        load_nsd(mini.root, 1, format="hdf5", sessions=[1], verbose=False)


def test_no_beta_files_at_all(mini):
    for s in (1, 2):
        for key in ("betas_volume_nifti", "betas_volume_hdf5"):
            _session(mini.root, s, key).unlink()
    message = "No HDF5 or NIfTI beta files of subject 1 in .*/betas_fithrf_GLMdenoise_RR"
    with pytest.raises(FileNotFoundError, match=message):
        load_nsd(mini.root, 1, verbose=False)


def test_trial_count_mismatch_against_stimpattern(mini):
    betas = mini.subjects[1].betas[1][..., :5]
    write_nsd_session_betas(mini.root, 1, 2, betas, affine=np.eye(4), formats=("nifti",))
    with pytest.raises(
        ValueError,
        match=r"Session 2: beta file \S*betas_session02.nii.gz has 5 trials, but the design's stimpattern "
        r"\(\S*nsd_expdesign.mat\) lists 6; behaviour file \S*responses.tsv: 6",
    ):
        load_nsd(mini.root, 1, format="nifti", verbose=False)


def test_trial_count_mismatch_against_behaviour_without_stimpattern(mini):
    path = SPEC.path("design", mini.root)
    mat = scipy.io.loadmat(path)
    scipy.io.savemat(path, {k: mat[k] for k in ("masterordering", "subjectim", "sharedix")})
    assert load_nsd_design(mini.root).n_sessions is None
    good = load_nsd(mini.root, 1, sessions=[2], verbose=False)  # offsets from the behaviour file
    np.testing.assert_array_equal(good.trials["trial_index"], np.arange(6, 12))
    write_nsd_session_betas(mini.root, 1, 1, mini.subjects[1].betas[0][..., :4], affine=np.eye(4), formats=("hdf5",))
    with pytest.raises(
        ValueError, match=r"Session 1: beta file \S*betas_session01.hdf5 has 4 trials, but the behaviour file "
        r"\(\S*subj01/behav/responses.tsv\) lists 6\. Trial counts must agree",
    ):
        load_nsd(mini.root, 1, verbose=False)


def test_offsets_from_files_without_stimpattern_or_behaviour(mini):
    path = SPEC.path("design", mini.root)
    mat = scipy.io.loadmat(path)
    scipy.io.savemat(path, {k: mat[k] for k in ("masterordering", "subjectim", "sharedix")})
    SPEC.path("behavior", mini.root, subject=1).unlink()
    resp = load_nsd(mini.root, 1, sessions=[2], verbose=False)
    np.testing.assert_array_equal(resp.trials["trial_index"], np.arange(6, 12))
    assert (resp.trials["run"] == -1).all()
    for key in ("betas_volume_nifti", "betas_volume_hdf5"):
        _session(mini.root, 1, key).unlink()
    with pytest.raises(FileNotFoundError, match="betas_session01"):
        load_nsd(mini.root, 1, sessions=[2], verbose=False)


def test_wrong_dtype(mini):
    nii = _session(mini.root, 1)
    nib.Nifti1Image(np.zeros((3, 4, 2, 6), np.float32), np.eye(4)).to_filename(nii)
    with pytest.raises(ValueError, match=r"betas_session01.nii.gz should hold int16 values; it holds float32"):
        load_nsd(mini.root, 1, format="nifti", verbose=False)
    with h5py.File(_session(mini.root, 1, "betas_volume_hdf5"), "w") as f:
        f.create_dataset("betas", data=np.zeros((6, 2, 4, 3), np.float64))
    with pytest.raises(ValueError, match="dataset 'betas' should hold int16 values; it holds float64"):
        load_nsd(mini.root, 1, format="hdf5", verbose=False)


def test_scaled_nifti_is_rejected(mini):
    # nibabel recomputes scaling on save, so write header + data by hand.
    header = nib.Nifti1Header()
    header.set_data_shape((3, 4, 2, 6))
    header.set_data_dtype(np.int16)
    header.set_slope_inter(2.0, 0.0)
    header.set_data_offset(352)
    with gzip.open(_session(mini.root, 1), "wb") as f:
        f.write(header.binaryblock + b"\0" * 4 + np.zeros((3, 4, 2, 6), np.int16).tobytes(order="F"))
    assert nib.load(_session(mini.root, 1)).dataobj.slope == 2.0
    with pytest.raises(ValueError, match="has a scale factor"):
        load_nsd(mini.root, 1, format="nifti", verbose=False)


def test_corrupted_files(mini):
    nii = _session(mini.root, 2)
    nii.write_bytes(nii.read_bytes()[:-40])  # truncated gzip stream: header fine, data not
    with pytest.raises(ValueError, match=r"Beta file .*betas_session02.nii.gz is corrupt or unreadable"):
        load_nsd(mini.root, 1, format="nifti", verbose=False)
    h5 = _session(mini.root, 1, "betas_volume_hdf5")
    h5.write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(ValueError, match=r"betas_session01.hdf5 is corrupt or unreadable"):
        load_nsd(mini.root, 1, format="hdf5", verbose=False)
    nii1 = _session(mini.root, 1)
    nii1.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"betas_session01.nii.gz is corrupt or unreadable"):
        load_nsd(mini.root, 1, format="nifti", verbose=False)


def test_behaviour_disagreeing_with_design(mini):
    path = SPEC.path("behavior", mini.root, subject=1)
    text = path.read_text().splitlines()
    cols = text[0].split("\t")
    row = text[1].split("\t")
    row[cols.index("73KID")] = str(int(row[cols.index("73KID")]) + 1)
    path.write_text("\n".join([text[0], "\t".join(row), *text[2:]]) + "\n")
    with pytest.raises(ValueError, match=r"behaviour file .*responses.tsv: its 73KID column disagrees"):
        load_nsd(mini.root, 1, verbose=False)


def test_missing_design_and_bad_roi_file(mini):
    roi = SPEC.path("roi_volume", mini.root, roi="floc-faces", **FIELDS)
    nib.Nifti1Image(np.full((3, 4, 2), 0.5, np.float32), np.eye(4)).to_filename(roi)
    with pytest.raises(ValueError, match="should hold integer labels"):
        load_nsd_roi(mini.root, 1, "floc-faces")
    SPEC.path("design", mini.root).unlink()
    with pytest.raises(FileNotFoundError, match="nsd_expdesign.mat does not exist"):
        load_nsd(mini.root, 1, verbose=False)


def test_hemispheres_and_duplicate_sessions(mini):
    with pytest.raises(ValueError, match=r"must not repeat a session. Got \[1, 1\]"):
        load_nsd(mini.root, 1, sessions=[1, 1], verbose=False)
    rh = SPEC.path("betas_surface", mini.root, subject=1, beta_version=FIELDS["beta_version"], hemi="rh", session=1)
    nib.MGHImage(np.zeros((4, 1, 1, 5), np.float32), np.eye(4)).to_filename(rh)
    with pytest.raises(ValueError, match=r"rh.betas_session01.mgh has 5 trials; .*lh.betas_session01.mgh has 6"):
        load_nsd(mini.root, 1, space="fsaverage", verbose=False)
    rh.unlink()
    with pytest.raises(FileNotFoundError, match="rh.betas_session01.mgh does not exist"):
        load_nsd(mini.root, 1, space="fsaverage", sessions=[1], verbose=False)
