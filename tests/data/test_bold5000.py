"""BOLD5000 loaders against miniature datasets written in the release layouts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neurodec.data.bold5000 import load_bold5000
from neurodec.data.bold5000_rois import ROI_NAMES, find_roi_masks
from neurodec.data.bold5000_stimuli import load_bold5000_imagenet_labels, load_bold5000_stimuli
from neurodec.data.fixtures.bold5000 import (
    MASK_AFFINE,
    make_bold5000_miniature,
    write_bold5000_glmsingle,
    write_bold5000_release1,
    write_bold5000_roi_betas,
    write_bold5000_roi_masks,
    write_bold5000_stimuli,
)
from neurodec.data.specs import check_root, load_spec

AFFINE_WARNING = r"affine of 2 GLMsingle beta file\(s\) .* differs from that of CSI1_brainmask\.nii\.gz; using"


@pytest.fixture
def mini(data_dir):
    return data_dir, make_bold5000_miniature(data_dir, random_state=5)


def _glmsingle(root, **kwargs):
    with pytest.warns(UserWarning, match=AFFINE_WARNING):
        return load_bold5000(root, 1, verbose=False, **kwargs)


def test_glmsingle_betas_masked_in_trial_order_with_mask_affine(mini):
    root, planted = mini
    resp = _glmsingle(root)
    mask = planted["brain_mask"]
    expected = np.concatenate([b[mask].T for b in planted["betas"]], axis=0)
    np.testing.assert_array_equal(resp.data, expected)
    assert list(resp.stimulus_ids) == planted["names"]
    assert list(resp.trials["session"]) == [1] * 6 + [2] * 6
    np.testing.assert_array_equal(resp.units[["i", "j", "k"]].to_numpy(), np.argwhere(mask))
    np.testing.assert_array_equal(resp.info["affine"], MASK_AFFINE)
    assert resp.info["affine_source"].endswith("CSI1_brainmask.nii.gz")
    assert resp.info["volume_shape"] == mask.shape and resp.subject == "CSI1"


def test_chunked_reading_gives_the_same_betas(mini, monkeypatch):
    root, planted = mini
    import neurodec.data.bold5000 as module

    monkeypatch.setattr(module, "CHUNK_BYTES", 4 * planted["brain_mask"].size * 2)  # two trials a chunk
    resp = _glmsingle(root)
    expected = np.concatenate([b[planted["brain_mask"]].T for b in planted["betas"]], axis=0)
    np.testing.assert_array_equal(resp.data, expected)


def test_repeats_and_repeated_images_form_the_test_split(mini):
    root, planted = mini
    trials = _glmsingle(root).trials
    for name in set(planted["names"]):
        rows = trials[trials["stimulus_id"] == name]
        assert list(rows["repeat"]) == list(range(len(rows)))
        assert set(rows["split"]) == ({"test"} if len(rows) > 1 else {"train"})
    assert (trials["split"] == "test").sum() == 6
    assert set(_glmsingle(root, test_images=None).trials["split"]) == {"train"}
    chosen = _glmsingle(root, test_images=["beach2.jpg"]).trials
    assert list(chosen.loc[chosen["split"] == "test", "stimulus_id"]) == ["beach2.jpg"]


def test_session_selection_keeps_global_indices(mini):
    root, planted = mini
    full = _glmsingle(root).trials
    with pytest.warns(UserWarning, match=r"affine of 1 GLMsingle"):
        resp = load_bold5000(root, 1, sessions=[2], verbose=False)
    np.testing.assert_array_equal(resp.data, planted["betas"][1][planted["brain_mask"]].T)
    np.testing.assert_array_equal(resp.trials["trial_index"], np.arange(6, 12))
    np.testing.assert_array_equal(resp.trials["repeat"], full["repeat"].to_numpy()[6:])
    with pytest.warns(UserWarning, match=r"affine of 2 GLMsingle"):
        swapped = load_bold5000(root, 1, sessions=[2, 1], verbose=False)
    np.testing.assert_array_equal(swapped.trials["trial_index"], list(range(6, 12)) + list(range(6)))
    np.testing.assert_array_equal(swapped.data[6:], planted["betas"][0][planted["brain_mask"]].T)
    with pytest.raises(ValueError, match="'sessions' must be distinct"):
        load_bold5000(root, 1, sessions=[1, 1], verbose=False)


def test_roi_masks_label_voxels_and_can_be_the_mask(mini):
    root, planted = mini
    resp = _glmsingle(root)
    ppa = resp.roi_mask("PPA")
    expected = (planted["roi_masks"]["LHPPA"] | planted["roi_masks"]["RHPPA"])[planted["brain_mask"]]
    np.testing.assert_array_equal(ppa, expected)
    assert set(resp.units.loc[ppa, "roi:PPA"]) == {"LHPPA", "RHPPA"}
    only = _glmsingle(root, rois="PPA", mask="rois")
    union = planted["roi_masks"]["LHPPA"] | planted["roi_masks"]["RHPPA"]
    np.testing.assert_array_equal(only.data, np.concatenate([b[union].T for b in planted["betas"]]))
    assert [c for c in only.units.columns if c.startswith("roi:")] == ["roi:PPA"]


def test_misnamed_roi_masks_match_leniently_with_a_warning(mini):
    root, planted = mini
    folder = root / "derivatives/spm/sub-CSI1"
    (folder / "sub-CSI1_mask-LHLOC.nii.gz").rename(folder / "sub-CSI1_mask-LHLO.nii.gz")
    (folder / "sub-CSI1_mask-RHRSC.nii.gz").rename(folder / "sub-CSI1_mask-RHRRSC.nii.gz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = find_roi_masks(root, 1)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "sub-CSI1_mask-LHLO.nii.gz is misnamed in the release; using it as LHLOC" in messages[0]
    assert "sub-CSI1_mask-RHRRSC.nii.gz is misnamed in the release; using it as RHRSC" in messages[1]
    assert list(found) == list(ROI_NAMES)
    assert found["RHRSC"].name == "sub-CSI1_mask-RHRRSC.nii.gz"
    with pytest.warns(UserWarning, match="misnamed"):
        resp = _glmsingle(root, rois=["LOC"])
    np.testing.assert_array_equal(
        resp.roi_mask("LOC", "LHLOC"), planted["roi_masks"]["LHLOC"][planted["brain_mask"]]
    )


def test_same_affines_give_no_warning_and_any_mask_file_works(data_dir, rng):
    betas = [rng.standard_normal((3, 3, 2, 2)), rng.standard_normal((3, 3, 2, 1))]
    brain = np.ones((3, 3, 2), dtype=bool)
    write_bold5000_glmsingle(data_dir, 3, betas, ["a.jpg", "b.jpg", "a.jpg"], brain)
    custom = np.zeros((3, 3, 2), dtype=bool)
    custom[1, 2, 0] = True
    (path,) = write_bold5000_roi_masks(data_dir, 3, {"LHPPA": custom})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resp = load_bold5000(data_dir, 3, mask=path, verbose=False)
    np.testing.assert_allclose(resp.data[:, 0], [betas[0][1, 2, 0, 0], betas[0][1, 2, 0, 1], betas[1][1, 2, 0, 0]])
    # Reference: nilearn's masker on the whole brain gives the same rows, session after session.
    from nilearn.masking import apply_mask

    spec = load_spec("bold5000")
    whole = load_bold5000(data_dir, 3, verbose=False)
    brain_path = str(spec.path("brain_mask", data_dir, subject=3))
    betas_paths = [str(p) for _, p in spec.find("glmsingle_betas", data_dir, subject=3)]
    reference = np.concatenate([apply_mask(p, brain_path) for p in betas_paths])
    np.testing.assert_allclose(whole.data, reference, rtol=1e-6)
    assert list(resp.trials["repeat"]) == [0, 0, 1]
    assert resp.info["affine_source"].endswith("CSI3_brainmask.nii.gz")
    load_spec("bold5000").path("brain_mask", data_dir, subject=3).unlink()
    resp = load_bold5000(data_dir, 3, mask=path, verbose=False)
    assert resp.info["affine_source"].endswith("CSI3_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-01.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"mask file .*CSI3_brainmask\.nii\.gz does not exist"):
        load_bold5000(data_dir, 3, verbose=False)


def test_trial_count_mismatch_names_the_imgnames_file(mini):
    root, planted = mini
    load_spec("bold5000").path("imgnames", root, subject=1).write_text("\n".join(planted["names"][:-1]))
    with pytest.raises(ValueError, match=r"CSI1_imgnames\.txt lists 11 trials but the 2 GLMsingle beta files hold 12"):
        load_bold5000(root, 1, verbose=False)


def test_roi_betas_in_imgnames_order(mini):
    root, planted = mini
    resp = load_bold5000(root, 1, source="roi-betas", rois=["PPA", "LHEarlyVis"], verbose=False)
    expected = np.concatenate([planted["roi_betas"][n] for n in ("LHPPA", "RHPPA", "LHEarlyVis")], axis=1)
    np.testing.assert_array_equal(resp.data, expected)
    assert list(resp.stimulus_ids) == planted["names"]
    assert list(resp.units["roi"]) == ["LHPPA"] * 3 + ["RHPPA"] * 3 + ["LHEarlyVis"] * 3
    assert list(resp.units["hemi"][:6]) == ["lh"] * 3 + ["rh"] * 3
    load_spec("bold5000").path("roi_betas", root, subject=1, roi_name="RHPPA").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"allses_RHPPA\.npy could not be read as \.npy"):
        load_bold5000(root, 1, source="roi-betas", rois="PPA", verbose=False)
    write_bold5000_roi_betas(root, 1, {"RHPPA": np.zeros((11, 3))})
    with pytest.raises(ValueError, match=r"allses_RHPPA\.npy must have shape .* 12 rows .*Got shape \(11, 3\)"):
        load_bold5000(root, 1, source="roi-betas", rois="PPA", verbose=False)


def test_release1_strips_rep_prefix_and_marks_repeats(mini):
    root, planted = mini
    resp = load_bold5000(root, 1, source="release1", tr=34, verbose=False)
    expected = np.concatenate([planted["release1"][n] for n in ROI_NAMES], axis=1).astype(np.float32)
    np.testing.assert_array_equal(resp.data, expected)
    assert list(resp.stimulus_ids) == planted["names"]
    assert list(resp.trials["rep_prefix"]) == [n.startswith("rep_") for n in planted["stim_list"]]
    assert set(resp.trials.loc[resp.trials["rep_prefix"], "split"]) == {"test"}
    assert resp.info["tr"] == 34


def test_release1_errors(mini):
    root, planted = mini
    with pytest.raises(ValueError, match=r"'tr' parameter .* must be one of \(1, 2, 3, 4, 5, 34\). Got 6"):
        load_bold5000(root, 1, source="release1", tr=6, verbose=False)
    with pytest.raises(FileNotFoundError, match=r"CSI1_ROIs_TR2\.mat does not exist"):
        load_bold5000(root, 1, source="release1", tr=2, verbose=False)
    write_bold5000_release1(root, 1, 3, {"LHPPA": np.zeros((12, 2))}, planted["stim_list"])
    with pytest.raises(ValueError, match=r"TR3\.mat lacks variable\(s\) \['RHPPA'\]; it holds \['LHPPA'\]"):
        load_bold5000(root, 1, source="release1", tr=3, rois="PPA", verbose=False)
    write_bold5000_release1(root, 1, 4, {"LHPPA": np.zeros((10, 2))}, planted["stim_list"])
    with pytest.raises(ValueError, match=r"TR4\.mat:LHPPA must have shape .* 12 rows"):
        load_bold5000(root, 1, source="release1", tr=4, rois="LHPPA", verbose=False)


def test_bad_arguments(mini):
    root, _ = mini
    with pytest.raises(ValueError, match="Unknown BOLD5000 ROI 'FFA'"):
        load_bold5000(root, 1, source="roi-betas", rois="FFA")
    with pytest.raises(ValueError, match=r"'subject' parameter of load_bold5000 must be one of \(1, 2, 3, 4\)"):
        load_bold5000(root, 5)
    with pytest.raises(ValueError, match="'source' parameter"):
        load_bold5000(root, 1, source="nsd")
    with pytest.raises(ValueError, match="has no session information"):
        load_bold5000(root, 1, source="roi-betas", sessions=[1])
    with pytest.raises(ValueError, match=r"Session\(s\) \[3\] of CSI1 have no GLMsingle beta file"):
        load_bold5000(root, 1, sessions=[3], verbose=False)
    with pytest.raises(ValueError, match="never presented"):
        load_bold5000(root, 1, source="release1", test_images=["nothing.jpg"], verbose=False)
    with pytest.raises(FileNotFoundError, match="No GLMsingle beta file"):
        load_bold5000(root, 2, verbose=False)


def test_corrupt_nifti_is_named(mini):
    root, _ = mini
    path = load_spec("bold5000").path("glmsingle_betas", root, subject=1, session=2)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"ses-02\.nii\.gz could not be read as NIfTI"):
        load_bold5000(root, 1, verbose=False)
    report = check_root("bold5000", root)
    assert [p.name for p, _ in report.malformed] == [path.name]


def test_truncated_nifti_data_is_named(mini):
    root, _ = mini
    import gzip

    path = load_spec("bold5000").path("glmsingle_betas", root, subject=1, session=1)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) - 40]))
    with pytest.raises(ValueError, match=r"ses-01\.nii\.gz could not be read \(truncated or corrupt\?\)"):
        load_bold5000(root, 1, verbose=False)


def test_check_root_passes_and_reports_missing_responses(mini):
    root, planted = mini
    assert check_root("bold5000", root).usable
    write_bold5000_release1(root, 1, 5, {"LHPPA": np.zeros((12, 2))}, planted["stim_list"])
    ((path, why),) = check_root("bold5000", root).malformed
    assert path.name == "CSI1_ROIs_TR5.mat" and "should hold variable(s) ['RHPPA'" in why
    empty = root / "empty"
    write_bold5000_stimuli(empty, ["kitchen4.jpg"])
    report = check_root("bold5000", empty)
    assert any("group 'responses'" in m for m in report.missing)


def test_stimuli_found_across_the_three_folders(mini):
    root, planted = mini
    stim = load_bold5000_stimuli(root, ids=planted["names"])
    assert sorted(stim.ids) == sorted(set(planted["names"]))
    folders = {p.parent.name for p in stim._key_of.values()}
    (root / "BOLD5000_Stimuli/Scene_Stimuli/Presented_Stimuli/COCO/.DS_Store").write_bytes(b"x")
    assert len(load_bold5000_stimuli(root)) == 9
    assert folders == {"COCO", "ImageNet", "Scene"}
    assert stim.get_image("kitchen4.jpg").shape == (8, 8, 3)
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(1, 4, 6, 3)
    write_bold5000_stimuli(root, ["tower1.png"], images=pixels)
    np.testing.assert_array_equal(load_bold5000_stimuli(root).get_image("tower1.png"), pixels[0])
    missing = r"2 BOLD5000 stimulus file\(s\) .*\['nope\.jpg', 'rep_kitchen4\.jpg'\]"
    with pytest.raises(FileNotFoundError, match=missing):
        load_bold5000_stimuli(root, ids=["kitchen4.jpg", "nope.jpg", "rep_kitchen4.jpg"])


def test_duplicate_stimulus_names_and_imagenet_labels(mini):
    root, _ = mini
    assert load_bold5000_imagenet_labels(root) == {
        "n01440764_10110.JPEG": "tench, Tinca tinca",
        "n01443537_2772.JPEG": "goldfish, Carassius auratus",
    }
    assert load_bold5000_imagenet_labels(root, ["kitchen4.jpg", "n01440764_99.JPEG"]) == {
        "n01440764_99.JPEG": "tench, Tinca tinca"
    }
    spec = load_spec("bold5000")
    spec.path("stimuli", root, source="Scene", filename="kitchen4.jpg").rename(
        spec.path("stimuli", root, source="COCO", filename="beach2.jpg")
    )
    with pytest.raises(ValueError, match="beach2.jpg exists twice"):
        load_bold5000_stimuli(root)
