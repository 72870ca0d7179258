"""Algonauts 2023 loader against miniature datasets written in the release layout."""

from __future__ import annotations

import numpy as np
import pytest

from neurodec.data.algonauts import load_algonauts, load_algonauts_stimuli
from neurodec.data.fixtures.algonauts import (
    ROI_CLASSES,
    make_algonauts_miniature,
    write_algonauts_fmri,
    write_algonauts_images,
    write_algonauts_roi_class,
    write_algonauts_vertex_mask,
)
from neurodec.data.specs import check_root, load_spec


@pytest.fixture
def mini(data_dir):
    return data_dir, make_algonauts_miniature(data_dir, random_state=3)


def test_responses_match_planted_arrays_in_image_order(mini):
    root, planted = mini
    resp = load_algonauts(root, 1, verbose=False)
    expected = np.concatenate([planted["fmri"]["lh"], planted["fmri"]["rh"]], axis=1)
    np.testing.assert_array_equal(resp.data, expected)
    assert resp.data.dtype == np.float32
    np.testing.assert_array_equal(resp.stimulus_ids, planted["train_ids"])
    np.testing.assert_array_equal(resp.trials["image_index"], np.arange(1, 7))
    assert set(resp.trials["split"]) == {"train"}
    assert resp.space == "fsaverage" and resp.subject == "subj01"
    assert "z-scored within each NSD session" in resp.info["preprocessing"]
    assert resp.info["fsaverage_size"] == {"lh": 30, "rh": 30}
    np.testing.assert_array_equal(resp.units["vertex"][:9], planted["vertices"]["lh"])
    np.testing.assert_array_equal(resp.units["vertex"][9:], planted["vertices"]["rh"])
    assert list(resp.units["hemi"]) == ["lh"] * 9 + ["rh"] * 11


def test_roi_label_names_come_from_masks_and_mappings(mini):
    root, planted = mini
    resp = load_algonauts(root, 1, rois=["floc-faces", "streams"], verbose=False)
    assert [c for c in resp.units.columns if c.startswith("roi:")] == ["roi:floc-faces", "roi:streams"]
    assert not any(c.startswith("roi:") for c in load_algonauts(root, 1, rois=[], verbose=False).units.columns)
    for roi in ("floc-faces", "streams"):
        names = [
            ROI_CLASSES[roi][int(planted["labels"][roi][hemi][v])]
            for hemi in ("lh", "rh")
            for v in planted["vertices"][hemi]
        ]
        assert list(resp.units[f"roi:{roi}"]) == names
    ffa = resp.roi_mask("floc-faces", ["FFA-1", "FFA-2"])
    assert ffa.sum() == sum(n in ("FFA-1", "FFA-2") for n in resp.units["roi:floc-faces"])


def test_single_hemisphere_and_fsaverage_only_masks(data_dir, rng):
    mask = np.zeros(12, dtype=np.int64)
    mask[[2, 5, 11]] = 1
    write_algonauts_vertex_mask(data_dir, 2, "rh", mask)
    fmri = rng.standard_normal((2, 3)).astype(np.float32)
    write_algonauts_fmri(data_dir, 2, "rh", fmri)
    write_algonauts_images(data_dir, 2, "train", [13, 72999])
    labels = np.zeros(12)
    labels[[5, 11]] = [2, 3]  # float labels, as some copies store them
    write_algonauts_roi_class(data_dir, 2, "floc-places", {"rh": labels}, {"rh": mask}, spaces=["fsaverage"])
    resp = load_algonauts(data_dir, 2, hemis=["rh"], verbose=False)
    np.testing.assert_array_equal(resp.data, fmri)
    assert list(resp.stimulus_ids) == [13, 72999]
    assert list(resp.units["roi:floc-places"]) == ["Unknown", "PPA", "RSC"]
    name = sorted((data_dir / "subj02/training_split/training_images").iterdir())[1].name
    assert name == "train-0002_nsd-72999.png"


def test_stimuli_ids_are_73k_ids_and_pixels_round_trip(mini):
    root, planted = mini
    train = load_algonauts_stimuli(root, 1, split="train")
    assert train.ids == planted["train_ids"].tolist()
    np.testing.assert_array_equal(train.get_image(train.ids[2]), planted["train_images"][2])
    test = load_algonauts_stimuli(root, 1, split="test")
    assert test.ids == planted["test_ids"].tolist()
    assert test.get_image(test.ids[0]).shape == (8, 8, 3)


def test_spec_check_root_passes_and_names_bad_files(mini):
    root, _ = mini
    assert check_root("algonauts", root).usable
    bad = load_spec("algonauts").path("training_fmri", root, subject=1, hemi="rh")
    bad.write_bytes(b"not a numpy file")
    report = check_root("algonauts", root)
    assert not report.usable
    assert [p.name for p, _ in report.malformed] == ["rh_training_fmri.npy"]
    write_algonauts_fmri(root, 1, "rh", np.zeros((6, 11)))
    (root / "subj01/roi_masks/lh.all-vertices_fsaverage_space.npy").unlink()
    (root / "subj01/roi_masks/rh.all-vertices_fsaverage_space.npy").unlink()
    assert any("all_vertices_mask" in m for m in check_root("algonauts", root).missing)


def test_row_count_mismatch_names_the_file(mini):
    root, _ = mini
    write_algonauts_fmri(root, 1, "lh", np.zeros((5, 9)))
    with pytest.raises(ValueError, match=r"lh_training_fmri\.npy must have shape .* 6 rows.*Got shape \(5, 9\)"):
        load_algonauts(root, 1, verbose=False)


def test_vertex_count_mismatch_names_both_files(mini):
    root, _ = mini
    write_algonauts_fmri(root, 1, "rh", np.zeros((6, 10)))
    with pytest.raises(ValueError, match=r"rh_training_fmri\.npy has 10 vertices but .*rh\.all-vertices"):
        load_algonauts(root, 1, verbose=False)


def test_bad_arguments(mini):
    root, _ = mini
    with pytest.raises(ValueError, match=r"Unknown ROI class\(es\) \['floc-face'\].*'floc-faces'"):
        load_algonauts(root, 1, rois=["floc-face"], verbose=False)
    with pytest.raises(ValueError, match="'subject' parameter of load_algonauts must be an integer in 1..8"):
        load_algonauts(root, 9)
    with pytest.raises(FileNotFoundError, match=r"no folder subj02; it has \['subj01'\]"):
        load_algonauts(root, 2)
    with pytest.raises(ValueError, match="'hemis' parameter"):
        load_algonauts(root, 1, hemis=["left"])
    with pytest.raises(ValueError, match="'split' parameter"):
        load_algonauts_stimuli(root, 1, split="val")


def test_corrupt_and_missing_files(mini):
    root, _ = mini
    spec = load_spec("algonauts")
    spec.path("training_fmri", root, subject=1, hemi="lh").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match=r"lh_training_fmri\.npy could not be read as \.npy"):
        load_algonauts(root, 1, verbose=False)
    spec.path("training_fmri", root, subject=1, hemi="lh").unlink()
    with pytest.raises(FileNotFoundError, match=r"lh_training_fmri\.npy does not exist"):
        load_algonauts(root, 1, verbose=False)


def test_disagreeing_masks_and_unmapped_labels_are_errors(mini):
    root, planted = mini
    spec = load_spec("algonauts")
    challenge = spec.path("roi_mask_challenge", root, subject=1, hemi="lh", roi="floc-places")
    np.save(challenge, np.full(9, 3))
    with pytest.raises(ValueError, match="disagree on the challenge vertices"):
        load_algonauts(root, 1, rois=["floc-places"], verbose=False)
    spec.path("roi_mask_fsaverage", root, subject=1, hemi="lh", roi="floc-places").unlink()
    np.save(challenge, np.full(9, 7))
    with pytest.raises(ValueError, match=r"mapping_floc-places\.npy has no name for label value\(s\) \[7\]"):
        load_algonauts(root, 1, rois=["floc-places"], verbose=False)


def test_gap_in_running_index_is_an_error(mini):
    root, _ = mini
    next((root / "subj01/training_split/training_images").glob("train-0003_*")).unlink()
    with pytest.raises(ValueError, match="running indices 1..5; index 3 is missing"):
        load_algonauts_stimuli(root, 1)
