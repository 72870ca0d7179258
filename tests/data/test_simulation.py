"""The simulated subject plants what it says it plants."""

import numpy as np
import pytest

from neurodec.data.simulation import simulate_subject, simulate_trials
from neurodec.data.synthetic_images import CATEGORIES, make_synthetic_images


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(1)
    n_images, grid = 240, 2
    images = make_synthetic_images(n_images, size=32, random_state=3)
    is_face = (images.categories == "face").astype(float)
    is_place = (images.categories == "place").astype(float)
    early = rng.normal(size=(n_images, 8 * grid * grid))
    # A late layer in which categories are linearly separable.
    late = np.column_stack([is_face, is_place, rng.normal(size=(n_images, 14))]) + 0.1 * rng.normal(size=(n_images, 16))
    subject = simulate_subject(
        {"early": early, "late": late}, images.categories, early_layer="early", late_layer="late", grid=grid,
        random_state=0,
    )
    return images, subject, early


def test_synthetic_images_are_reproducible_and_balanced():
    a = make_synthetic_images(30, size=32, random_state=5)
    b = make_synthetic_images(30, size=32, random_state=5)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.images.shape == (30, 32, 32, 3) and a.images.dtype == np.uint8
    counts = {c: int((a.categories == c).sum()) for c in CATEGORIES}
    assert counts == {"face": 10, "place": 10, "object": 10}
    with pytest.raises(ValueError, match="Unknown image categories"):
        make_synthetic_images(3, categories=("dog",))


def test_areas_labels_and_selectivity(simulated):
    images, subject, early = simulated
    driven = subject.area != "none"
    # Driven voxels have unit-variance signal, the others none.
    np.testing.assert_allclose(subject.signal[:, driven].std(0), 1.0, rtol=1e-6)
    assert np.all(subject.signal[:, ~driven] == 0)
    assert set(subject.layer[subject.area == "early"]) == {"early"}
    assert set(subject.layer[subject.area == "face"]) == {"late"}
    # Face voxels respond more to faces, place voxels to places.
    for name in ("face", "place"):
        vox = subject.area == name
        assert vox.sum() > 3
        pref = subject.signal[images.categories == name][:, vox].mean()
        other = subject.signal[images.categories != name][:, vox].mean()
        assert pref - other > 1.0
    # ROI volumes follow NSD's convention and match the areas.
    ii, jj, kk = subject.voxels.T
    assert subject.rois["nsdgeneral"].min() == -1
    general = subject.rois["nsdgeneral"][ii, jj, kk] == 1
    assert np.all(general[driven]) and np.any(general[~driven])
    ffa = subject.roi_labels["floc-faces"].index("FFA-1") + 1
    assert np.array_equal(subject.rois["floc-faces"][ii, jj, kk] == ffa, subject.area == "face")
    # Early voxels are retinotopic: each is explained by one grid cell's features.
    v = np.flatnonzero(subject.area == "early")[0]
    cells = early.reshape(len(early), 8, 4)
    ones = np.ones((len(early), 1))  # the signal is centred: fit an intercept
    r2 = [
        np.linalg.lstsq(np.hstack([cells[:, :, c], ones]), subject.signal[:, v], rcond=None)[1].sum()
        for c in range(4)
    ]
    assert min(r2) < 1e-8 < max(r2)


def test_trial_noise_matches_ncsnr(simulated):
    _, subject, _ = simulated
    trial_images = np.repeat(np.arange(40), 50)
    betas = simulate_trials(subject, trial_images, random_state=2)
    residual = betas - subject.signal[trial_images]
    driven = subject.ncsnr > 0
    measured = 1.0 / residual[:, driven].std(0)
    np.testing.assert_allclose(measured, subject.ncsnr[driven], rtol=0.12)
    with pytest.raises(ValueError, match="spatial_correlation"):
        simulate_trials(subject, trial_images, spatial_correlation=1.0)
