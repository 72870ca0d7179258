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


def test_synthetic_t1_is_a_deterministic_brain_like_cartoon(simulated):
    from neurodec.data.simulation import T1_INTENSITIES, synthetic_t1

    images, subject, early = simulated
    t1 = subject.t1
    assert t1.shape == subject.mask.shape and t1.dtype == np.float32
    np.testing.assert_array_equal(t1, synthetic_t1(subject.mask))
    # Derived from the mask without random draws: another seed gives the same anatomy.
    other = simulate_subject({"early": early, "late": early}, images.categories, early_layer="early",
                             late_layer="late", grid=2, random_state=7)
    np.testing.assert_array_equal(other.t1, t1)
    # Bright white matter deep inside, a darker gray-matter rim, dark outside the brain.
    from scipy.ndimage import distance_transform_edt

    depth = distance_transform_edt(np.pad(subject.mask, 1))[1:-1, 1:-1, 1:-1]
    deep, rim = np.median(t1[depth >= 3]), np.median(t1[subject.mask & (depth <= 1)])
    outside = np.median(t1[~subject.mask])
    assert deep > 0.85 * T1_INTENSITIES["white matter"]
    assert outside < rim < deep and rim < 0.8 * deep and outside < 0.3 * deep
    # Two CSF-dark ventricles beside the midline at the centre of the brain.
    centre = tuple(s // 2 for s in subject.mask.shape)
    row = t1[:, centre[1], centre[2]]
    assert row[subject.mask[:, centre[1], centre[2]]].min() < 0.5 * deep
    with pytest.raises(ValueError, match="3-D volume"):
        synthetic_t1(np.ones((3, 3), bool))
