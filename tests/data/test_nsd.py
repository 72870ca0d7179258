"""load_nsd / load_nsd_stimuli on miniatures written in NSD's layout, with planted values."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io

from neurodec.data import load_nsd, load_nsd_design, load_nsd_roi, load_nsd_stim_info, load_nsd_stimuli
from neurodec.data.fixtures.nsd import NSDSubjectData, make_nsd_design, make_nsd_miniature, write_nsd
from neurodec.data.specs import load_spec

SHAPE = (5, 6, 4)
N_SESSIONS, PER_SESSION = 3, 9
SPEC = load_spec("nsd")


def _planted(design, n_vertices=7):
    """Betas whose value encodes (global trial, unit): 0.01 * trial + unit / 300, on NSD's 1/300 grid."""
    n = N_SESSIONS * PER_SESSION
    voxel = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    volume = (3 * np.arange(n)[None, None, None, :] + voxel[..., None]) / 300.0 - 1.0
    surface = {h: np.arange(n)[None, :] * 0.5 + np.arange(n_vertices)[:, None] * (1 if h == "lh" else -1) + 0.25
               for h in ("lh", "rh")}
    split = lambda a: [a[..., s * PER_SESSION:(s + 1) * PER_SESSION] for s in range(N_SESSIONS)]  # noqa: E731
    labels = np.full(SHAPE, -1)
    labels[1:4, 1:5, 1:3] = np.arange(24).reshape(3, 4, 2) % 6  # 0..5: floc-faces labels
    general = np.where(labels >= 0, (labels > 0).astype(int), -1)
    data = NSDSubjectData(
        betas=split(volume),
        ncsnr=np.linspace(0.1, 2.0, voxel.size).reshape(SHAPE),
        rois={"nsdgeneral": general, "floc-faces": labels},
        label_names={"nsdgeneral": ["nsdgeneral"], "floc-faces": ["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"]},
        surface_betas={h: split(v) for h, v in surface.items()},
        surface_ncsnr={h: np.linspace(0.5, 1.5, n_vertices) for h in ("lh", "rh")},
    )
    return data, volume, surface


@pytest.fixture(scope="module")
def nsd(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    rng = np.random.default_rng(1)
    design = make_nsd_design(
        n_images=30, n_shared=3, n_sessions=N_SESSIONS, trials_per_session=PER_SESSION, random_state=rng
    )
    subject, volume, surface = _planted(design)
    images = rng.integers(0, 256, (30, 6, 6, 3), dtype=np.uint8)
    captions = {i: [f"caption {i}"] for i in range(30)}
    fsavg = {"floc-faces": {h: np.arange(7) % 3 for h in ("lh", "rh")}}
    write_nsd(root, design=design, images=images, subjects={1: subject}, captions=captions,
              fsaverage_rois=fsavg, fsaverage_label_names={"floc-faces": ["OFA", "FFA-1"]})
    return dict(root=root, design=design, subject=subject, volume=volume, surface=surface, images=images,
                captions=captions)


def test_volume_values_are_int16_over_300(nsd):
    resp = load_nsd(nsd["root"], 1, verbose=False)
    path = SPEC.path("betas_volume_nifti", nsd["root"], subject=1, space="func1pt8mm",
                     beta_version="betas_fithrf_GLMdenoise_RR", session=1)
    raw = np.asarray(nib.load(path).dataobj)
    assert raw.dtype == np.int16
    assert resp.data.dtype == np.float32 and resp.shape == (N_SESSIONS * PER_SESSION, np.prod(SHAPE))
    expected = np.concatenate([raw.reshape(-1, PER_SESSION).T.astype(np.float32) / np.float32(300)])
    np.testing.assert_allclose(resp.data[:PER_SESSION], expected, rtol=1e-6)
    np.testing.assert_allclose(resp.data, nsd["volume"].reshape(-1, resp.n_trials).T, atol=1e-5)
    assert list(resp.units.columns[:3]) == ["i", "j", "k"]
    assert resp.info["volume_shape"] == SHAPE and resp.info["affine"].shape == (4, 4)


def test_trial_to_image_mapping_matches_raw_design_file(nsd):
    resp = load_nsd(nsd["root"], 1, verbose=False, rois=[])
    mat = scipy.io.loadmat(SPEC.path("design", nsd["root"]))
    t = np.arange(resp.n_trials)
    expected = mat["subjectim"][0, mat["masterordering"][0, t].astype(int) - 1].astype(int) - 1
    np.testing.assert_array_equal(resp.stimulus_ids, expected)
    np.testing.assert_array_equal(resp.trials["trial_index"], t)
    # stim info's subject1_repK (1-based trial numbers) gives the same trials, independently
    info = load_nsd_stim_info(nsd["root"])
    for k in range(3):
        shown = info[info[f"subject1_rep{k}"] > 0]
        trials = resp.trials.set_index("trial_index").loc[shown[f"subject1_rep{k}"] - 1]
        np.testing.assert_array_equal(trials["stimulus_id"], shown["nsdId"])
        assert (trials["repeat"] == k).all()


def test_shared1000_split(nsd):
    resp = load_nsd(nsd["root"], 1, verbose=False, rois=[])
    mat = scipy.io.loadmat(SPEC.path("design", nsd["root"]))
    n_shared = mat["sharedix"].size
    is_test = mat["masterordering"][0, : resp.n_trials] <= n_shared
    np.testing.assert_array_equal(resp.trials["split"] == "test", is_test)
    assert set(resp.split("test").stimulus_ids) <= set(mat["sharedix"].ravel().astype(int) - 1)


def test_session_subset_and_runs(nsd):
    resp = load_nsd(nsd["root"], 1, sessions=[3, 1], verbose=False, rois=[])
    np.testing.assert_array_equal(resp.trials["session"], [3] * PER_SESSION + [1] * PER_SESSION)
    np.testing.assert_array_equal(resp.trials["trial_index"][:PER_SESSION], np.arange(2 * PER_SESSION, 3 * PER_SESSION))
    flat = nsd["volume"].reshape(-1, N_SESSIONS * PER_SESSION).T
    np.testing.assert_allclose(resp.data[:PER_SESSION], flat[2 * PER_SESSION:], atol=1e-5)
    behav = pd.read_csv(SPEC.path("behavior", nsd["root"], subject=1), sep="\t")
    np.testing.assert_array_equal(resp.trials["run"], behav["RUN"].to_numpy()[resp.trials["trial_index"]])


def test_hdf5_equals_nifti_and_auto_prefers_hdf5(nsd):
    roi = ("floc-faces", ["FFA-1", "OFA"])
    h5 = load_nsd(nsd["root"], 1, roi=roi, format="hdf5", verbose=False)
    nii = load_nsd(nsd["root"], 1, roi=roi, format="nifti", verbose=False)
    auto = load_nsd(nsd["root"], 1, roi=roi, verbose=False)
    np.testing.assert_array_equal(h5.data, nii.data)
    assert all(f.endswith(".hdf5") for f in auto.info["files"])
    assert all(f.endswith(".nii.gz") for f in nii.info["files"])


def test_roi_selection_and_label_names(nsd):
    labels, names = load_nsd_roi(nsd["root"], 1, "floc-faces")
    assert names == {0: "Unknown", 1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"}
    resp = load_nsd(nsd["root"], 1, roi=("floc-faces", "FFA-1"), verbose=False)
    assert resp.n_units == (labels == 2).sum()
    assert (resp.units["roi:floc-faces"] == "FFA-1").all()
    ijk = resp.units[["i", "j", "k"]].to_numpy()
    assert (labels[tuple(ijk.T)] == 2).all()
    general = load_nsd(nsd["root"], 1, roi="nsdgeneral", verbose=False)
    assert general.n_units == (labels > 0).sum()
    np.testing.assert_array_equal(general.roi_mask("floc-faces", ["FFA-1"]), general.units["roi:floc-faces"] == "FFA-1")
    hemi, _ = load_nsd_roi(nsd["root"], 1, "lh.floc-faces")
    assert (hemi[SHAPE[0] // 2:] == -1).all() and np.array_equal(hemi[: SHAPE[0] // 2], labels[: SHAPE[0] // 2])


def test_mask_array_roi(nsd):
    mask = np.zeros(SHAPE, bool)
    mask[0, 0, 0] = mask[4, 5, 3] = True
    resp = load_nsd(nsd["root"], 1, roi=mask, verbose=False, rois=[])
    np.testing.assert_allclose(resp.data[:, 1], nsd["volume"][4, 5, 3], atol=1e-5)


def test_noise_ceiling_from_ncsnr(nsd):
    resp = load_nsd(nsd["root"], 1, roi="nsdgeneral", verbose=False)
    ncsnr = nib.load(SPEC.path("ncsnr_volume", nsd["root"], subject=1, space="func1pt8mm",
                               beta_version="betas_fithrf_GLMdenoise_RR")).get_fdata()
    labels, _ = load_nsd_roi(nsd["root"], 1, "nsdgeneral")
    snr = ncsnr[labels > 0]
    np.testing.assert_allclose(resp.noise_ceiling(n=3), snr**2 / (snr**2 + 1 / 3), rtol=1e-6)
    counts = resp.split("test").trials.groupby("stimulus_id").size().to_numpy()
    inv_n = np.mean(1.0 / counts)
    np.testing.assert_allclose(resp.noise_ceiling(), snr**2 / (snr**2 + inv_n), rtol=1e-6)


def test_average_repeats_on_loaded_betas(nsd):
    resp = load_nsd(nsd["root"], 1, verbose=False, rois=[])
    avg = resp.average_repeats()
    flat = nsd["volume"].reshape(-1, resp.n_trials).T
    for row, sid in enumerate(avg.stimulus_ids[:6]):
        trials = np.flatnonzero(resp.stimulus_ids == sid)
        np.testing.assert_allclose(avg.data[row], flat[trials].mean(axis=0), atol=1e-5)
        assert avg.trials["n_repeats"][row] == trials.size


def test_zscore_sessions(nsd):
    resp = load_nsd(nsd["root"], 1, verbose=False, zscore_sessions=True, rois=[])
    flat = nsd["volume"].reshape(-1, resp.n_trials).T
    for s in range(N_SESSIONS):
        block = flat[s * PER_SESSION:(s + 1) * PER_SESSION]
        expected = (block - block.mean(0)) / block.std(0)
        np.testing.assert_allclose(resp.data[resp.trials["session"] == s + 1], expected, atol=1e-4)


def test_surface_betas_not_divided(nsd):
    resp = load_nsd(nsd["root"], 1, space="fsaverage", verbose=False)
    assert resp.n_units == 14 and list(resp.units["hemi"].unique()) == ["lh", "rh"]
    expected = np.concatenate([nsd["surface"]["lh"], nsd["surface"]["rh"]]).T
    np.testing.assert_allclose(resp.data, expected, rtol=1e-6)
    assert resp.info["n_vertices"] == {"lh": 7, "rh": 7}
    np.testing.assert_allclose(resp.units["ncsnr"], np.tile(np.linspace(0.5, 1.5, 7), 2), rtol=1e-6)
    # fsaverage labels get names from fsaverage's own ctab (only OFA, FFA-1 there)
    assert set(resp.units["roi:floc-faces"]) == {"", "OFA", "FFA-1"}
    ffa = load_nsd(nsd["root"], 1, space="fsaverage", roi=("floc-faces", "FFA-1"), verbose=False)
    np.testing.assert_array_equal(ffa.units["vertex"], [2, 5, 2, 5])


def test_design_object_is_zero_based(nsd):
    design = load_nsd_design(nsd["root"])
    np.testing.assert_array_equal(design.masterordering, nsd["design"].masterordering)
    np.testing.assert_array_equal(design.subjectim, nsd["design"].subjectim)
    assert design.n_sessions == N_SESSIONS and list(design.trials_per_session) == [PER_SESSION] * N_SESSIONS
    table = design.trials(1)
    assert (table.groupby("stimulus_id")["repeat"].max() <= 2).all()


def test_stim_info_parses_crop_boxes(nsd):
    info = load_nsd_stim_info(nsd["root"])
    assert isinstance(info.loc[1, "cropBox"], tuple) and len(info.loc[1, "cropBox"]) == 4
    assert info["shared1000"].dtype == bool and info["shared1000"].sum() == 3


def test_stimuli_lazy_with_captions(nsd):
    ann = nsd["root"] / "coco_annotations"
    stim = load_nsd_stimuli(nsd["root"], ids=[4, 2, 9],
                            captions=[ann / "captions_train2017.json", ann / "captions_val2017.json"])
    assert stim.source._file is None  # nothing read yet
    np.testing.assert_array_equal(stim.get_image(9), nsd["images"][9])
    assert stim.get_captions(2) == ["caption 2"] and stim.get_captions(4) == ["caption 4"]
    assert len(load_nsd_stimuli(nsd["root"])) == 30
    with pytest.raises(ValueError, match=r"Stimulus id\(s\) \[30\] do not exist"):
        load_nsd_stimuli(nsd["root"], ids=[1, 30])
    with pytest.raises(KeyError, match="does not exist"):
        stim.get_image(5)


def test_captions_join_on_coco_id_and_split(nsd, tmp_path):
    # Same cocoId in the other split must not leak in: rewrite val captions with train ids.
    info = load_nsd_stim_info(nsd["root"])
    train_id = int(info.loc[info["cocoSplit"] == "train2017", "cocoId"].iloc[0])
    nsd_id = int(info.loc[info["cocoId"] == train_id, "nsdId"].iloc[0])
    val = tmp_path / "captions_val2017.json"
    val.write_text(json.dumps({"annotations": [{"image_id": train_id, "id": 1, "caption": "wrong split"}]}))
    stim = load_nsd_stimuli(nsd["root"], ids=[nsd_id], captions={"val2017": val})
    assert stim.get_captions(nsd_id) == []
    with pytest.raises(ValueError, match="Cannot tell the COCO split"):
        load_nsd_stimuli(nsd["root"], captions=tmp_path / "caps.json")


def test_make_nsd_miniature_is_consistent(tmp_path):
    mini = make_nsd_miniature(tmp_path, n_subjects=2, formats=("hdf5",), surface=False)
    for subject in (1, 2):
        resp = load_nsd(tmp_path, subject, roi="nsdgeneral", verbose=False)
        truth = np.concatenate(mini.subjects[subject].betas, axis=-1)[mini.subjects[subject].rois["nsdgeneral"] > 0]
        np.testing.assert_allclose(resp.data, truth.T, atol=1e-5)
        assert (resp.split("test").trials.groupby("stimulus_id").size() == 3).all()


def test_hdf5_other_layouts_and_unwritten_chunks(nsd, tmp_path):
    """Compressed/differently chunked HDF5 (hyperslab path) and never-written chunks read right."""
    import h5py

    from neurodec.data.nsd_betas import read_beta_header, read_masked_betas

    raw = np.round(nsd["volume"][..., :PER_SESSION] * 300).astype(np.int16)
    mask = np.zeros(SHAPE, bool)
    mask[1:4, 2:5, 1:3] = True
    mask[0, 0, 0] = True
    expected = raw[mask].T / np.float32(300)
    for name, kwargs in [("gzip", dict(compression="gzip", chunks=(PER_SESSION, 1, 2, 2))),
                         ("plain", dict(chunks=(PER_SESSION, 1, 1, 1)))]:
        path = tmp_path / f"{name}.hdf5"
        with h5py.File(path, "w") as f:
            f.create_dataset("betas", data=raw.T, **kwargs)
        beta = read_beta_header(path, "hdf5")
        out = np.empty((PER_SESSION, mask.sum()), np.float32)
        read_masked_betas(beta, mask, out)
        np.testing.assert_allclose(out, expected, rtol=1e-6)
    path = tmp_path / "sparse.hdf5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("betas", shape=raw.T.shape, dtype=np.int16, chunks=(PER_SESSION, 1, 1, 1), fillvalue=0)
        ds[:, 1, 2, 1] = raw[1, 2, 1]  # only voxel (1, 2, 1) is ever written
    out = np.empty((PER_SESSION, mask.sum()), np.float32)
    read_masked_betas(read_beta_header(path, "hdf5"), mask, out)
    column = np.argwhere(mask).tolist().index([1, 2, 1])
    np.testing.assert_allclose(out[:, column], raw[1, 2, 1] / np.float32(300), rtol=1e-6)
    assert not np.delete(out, column, axis=1).any()


def test_run_from_stimpattern_without_behaviour(tmp_path):
    mini = make_nsd_miniature(tmp_path, formats=("nifti",), surface=False)
    SPEC.path("behavior", tmp_path, subject=1).unlink()
    resp = load_nsd(tmp_path, 1, sessions=[2], verbose=False, rois=[])
    design = mini.design.trials(1).iloc[12:24]
    np.testing.assert_array_equal(resp.trials["run"], design["run"])
    assert set(resp.trials["run"]) == {1, 2}
