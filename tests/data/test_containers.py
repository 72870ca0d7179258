"""The shared containers: Responses, Stimuli, Features."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pandas as pd
import pytest

from neurodec.data import Features, HDF5Images, Responses, Stimuli, noise_ceiling_from_ncsnr


def _responses(rng, n_units=4):
    trials = pd.DataFrame(
        {
            "stimulus_id": [5, 7, 5, 9, 7, 5, 9],
            "session": [1, 1, 1, 2, 2, 2, 2],
            "run": 1,
            "repeat": [0, 0, 1, 0, 1, 2, 1],
            "split": ["test", "train", "test", "train", "train", "test", "train"],
        }
    )
    units = pd.DataFrame({"roi:floc-faces": ["FFA-1", "", "OFA", "FFA-1"][:n_units], "ncsnr": [0.5, 1.0, 2.0, 0.0]})
    return Responses(rng.normal(size=(7, n_units)).astype(np.float32), trials, units, subject="s1")


def test_average_repeats_groups_by_split_and_stimulus(rng):
    resp = _responses(rng)
    avg = resp.average_repeats()
    assert avg.stimulus_ids.tolist() == [5, 7, 9]  # order of first presentation
    np.testing.assert_allclose(avg.data[0], resp.data[[0, 2, 5]].mean(0), rtol=1e-6)
    np.testing.assert_allclose(avg.data[2], resp.data[[3, 6]].mean(0), rtol=1e-6)
    assert avg.trials["n_repeats"].tolist() == [3, 2, 2] and avg.data.dtype == np.float32
    # the same stimulus in two splits stays two rows
    resp.trials.loc[4, "split"] = "test"
    assert len(resp.average_repeats().trials) == 4


def test_average_repeats_time_resolved(rng):
    resp = _responses(rng)
    data = rng.normal(size=(7, 4, 3))
    timed = Responses(data, resp.trials, resp.units, subject="s1", times=np.arange(3) / 10)
    avg = timed.average_repeats()
    assert avg.shape == (3, 4, 3)
    np.testing.assert_allclose(avg.data[1], data[[1, 4]].mean(0))


def test_split_select_and_roi_mask(rng):
    resp = _responses(rng)
    train, test = resp.train_test_split()
    assert train.n_trials == 4 and test.n_trials == 3
    np.testing.assert_array_equal(test.data, resp.data[[0, 2, 5]])
    with pytest.raises(ValueError, match=r"No trial belongs to split 'val'; splits present: \['test', 'train'\]"):
        resp.split("val")
    np.testing.assert_array_equal(resp.roi_mask("floc-faces", "FFA-1"), [True, False, False, True])
    np.testing.assert_array_equal(resp.roi_mask("floc-faces"), [True, False, True, True])
    with pytest.raises(ValueError, match=r"Unknown ROI atlas 'streams'.*\['floc-faces'\]"):
        resp.roi_mask("streams")
    with pytest.raises(ValueError, match=r"Unknown label\(s\) \['FFA-2'\]"):
        resp.roi_mask("floc-faces", ["FFA-2"])
    sub = resp.select_units(resp.roi_mask("floc-faces", "FFA-1"))
    np.testing.assert_array_equal(sub.data, resp.data[:, [0, 3]])
    with pytest.raises(ValueError, match="boolean units selection must have shape"):
        resp.select_units(np.ones(3, bool))


def test_responses_validates_shapes(rng):
    resp = _responses(rng)
    with pytest.raises(ValueError, match="'trials' has 7 rows but 'data' has 6"):
        Responses(resp.data[:6], resp.trials, resp.units, subject="s1")
    with pytest.raises(ValueError, match=r"lacks the required column\(s\) \['split'\]"):
        Responses(resp.data, resp.trials.drop(columns="split"), resp.units, subject="s1")


def test_noise_ceiling_conventions(rng):
    resp = _responses(rng)
    snr = resp.units["ncsnr"].to_numpy()
    np.testing.assert_allclose(resp.noise_ceiling(n=2), snr**2 / (snr**2 + 0.5))
    # test stimulus 5 has 3 repeats: Algonauts' (r3/3 + r2/2 + r1) / (r1 + r2 + r3) with r3 = 1
    np.testing.assert_allclose(resp.noise_ceiling(), snr**2 / (snr**2 + 1 / 3))
    counts = [3, 3, 2, 1]
    weighted = (2 / 3 + 1 / 2 + 1) / 4
    np.testing.assert_allclose(noise_ceiling_from_ncsnr(snr, counts), snr**2 / (snr**2 + weighted))
    with pytest.raises(ValueError, match="must be positive"):
        noise_ceiling_from_ncsnr(snr, 0)


def test_stimuli_from_array_subset_and_hash(rng):
    images = rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    stim = Stimuli.from_array(images, ids=[10, 11, 12], captions={11: ["a cat"]})
    np.testing.assert_array_equal(stim.get_image(12), images[2])
    assert stim.get_captions(11) == ["a cat"] and stim.get_captions(10) == []
    sub = stim.subset([12, 10])
    assert sub.ids == [12, 10]
    np.testing.assert_array_equal(next(iter(sub)), images[2])
    assert stim.content_hash() == Stimuli.from_array(images.copy(), ids=[10, 11, 12]).content_hash()
    changed = images.copy()
    changed[1, 0, 0, 0] ^= 1
    assert stim.content_hash() != Stimuli.from_array(changed, ids=[10, 11, 12]).content_hash()
    with pytest.raises(KeyError, match="Stimulus id 13 does not exist"):
        stim.get_image(13)
    with pytest.raises(KeyError, match=r"do not exist in 'stimuli': \[99\]"):
        stim.subset([10, 99])
    with pytest.raises(ValueError, match="appears more than once"):
        Stimuli.from_array(images, ids=[1, 1, 2])


def test_stimuli_from_files_and_grayscale(tmp_path, rng):
    from PIL import Image

    gray = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "a.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    stim = Stimuli.from_files({"a": tmp_path / "a.png", "bad": tmp_path / "bad.png"})
    img = stim.get_image("a")
    assert img.shape == (5, 6, 3) and np.array_equal(img[..., 1], gray)
    with pytest.raises(ValueError, match="could not be decoded"):
        stim.get_image("bad")


def test_hdf5_images_lazy_and_picklable(tmp_path, rng):
    images = rng.integers(0, 256, (4, 5, 5, 3), dtype=np.uint8)
    path = tmp_path / "brick.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("imgBrick", data=images)
    source = HDF5Images(path, "imgBrick")
    stim = Stimuli([3, 1], source)
    np.testing.assert_array_equal(stim.get_image(3), images[3])
    clone = pickle.loads(pickle.dumps(stim))
    np.testing.assert_array_equal(clone.get_image(1), images[1])
    assert clone.content_hash() == stim.content_hash()
    with pytest.raises(ValueError, match="out of range"):
        source.read(4)
    with pytest.raises(ValueError, match="has no dataset 'other'"):
        HDF5Images(path, "other").read(0)


def test_features_align_with_repeats_and_hdf5(tmp_path, rng):
    data = rng.normal(size=(4, 3))
    feats = Features(data, [30, 10, 20, 40], name="layer")
    np.testing.assert_array_equal(feats.align([20, 30, 20]), data[[2, 0, 2]])
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["x"] = data
    with h5py.File(tmp_path / "f.h5", "r") as f:
        lazy = Features(f["x"], [30, 10, 20, 40])
        np.testing.assert_array_equal(lazy.align([40, 10, 10, 30]), data[[3, 1, 1, 0]])
    with pytest.raises(ValueError, match=r"no rows for 1 stimulus id\(s\), e.g. \[99\]"):
        feats.align([10, 99])
    with pytest.raises(ValueError, match="stimulus ids must be unique"):
        Features(data, [1, 1, 2, 3])
