"""PixCorr and SSIM: agreement with numpy / scikit-image references, the protocol's resize, bad input."""

import numpy as np
import pytest

from float32_tolerance import float32_atol
from neurodec.metrics import pixcorr, ssim

torch = pytest.importorskip("torch")


def _images(rng, n=3, size=425):
    """Smooth random images in [0, 1] (structure SSIM can see) and noisy versions of them."""
    base = rng.random((n, size // 17, size // 17, 3))
    true = np.kron(base, np.ones((1, 17, 17, 1)))
    pred = np.clip(true + 0.2 * rng.standard_normal(true.shape), 0, 1)
    # float32 values, so the references below see exactly what the metrics see
    return pred.astype(np.float32), true.astype(np.float32)


def test_pixcorr_matches_numpy_corrcoef_at_425(rng):
    pred, true = _images(rng)
    res = pixcorr(pred, true)
    # At 425 px the resize is the identity; r over the flattened RGB values per image.
    ref = [np.corrcoef(pred[i].ravel().astype(np.float64), true[i].ravel().astype(np.float64))[0, 1] for i in range(3)]
    np.testing.assert_allclose(res.per_image, ref, rtol=0, atol=float32_atol(pred[0].size))
    assert res.mean == pytest.approx(np.mean(ref)) and float(res) == res.mean


def test_ssim_matches_scikit_image(rng):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    from skimage.color import rgb2gray

    pred, true = _images(rng)
    res = ssim(pred, true)
    ref = [
        skimage_metrics.structural_similarity(
            rgb2gray(pred[i].astype(np.float64)), rgb2gray(true[i].astype(np.float64)),
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
        )
        for i in range(3)
    ]
    # Both run in float64 on the same float32 pixels: only summation order differs (11x11 window sums).
    np.testing.assert_allclose(res.per_image, ref, rtol=0, atol=1e-9)
    assert 0.0 < res.mean < 1.0


def test_identical_images_score_one_and_noise_lowers(rng):
    pred, true = _images(rng, n=2)
    assert ssim(true, true).mean == pytest.approx(1.0, abs=1e-12)
    assert pixcorr(true, true).mean == pytest.approx(1.0, abs=1e-12)
    noisier = np.clip(true + 0.5 * rng.standard_normal(true.shape), 0, 1).astype(np.float32)
    assert ssim(noisier, true).mean < ssim(pred, true).mean < 1.0
    assert pixcorr(noisier, true).mean < pixcorr(pred, true).mean < 1.0


def test_resize_to_425_bilinear_then_score(rng):
    tv = pytest.importorskip("neurodec._torchvision").enable_torchvision()
    # uint8 reconstructions at 512 px (as diffusion models return) against 425 px ground truths.
    pred8 = (rng.random((2, 512, 512, 3)) * 255).astype(np.uint8)
    true8 = (rng.random((2, 425, 425, 3)) * 255).astype(np.uint8)
    res = pixcorr(pred8, true8)
    pred_t = torch.from_numpy(pred8).permute(0, 3, 1, 2).float() / 255
    resized = tv.transforms.functional.resize(pred_t, 425, tv.transforms.InterpolationMode.BILINEAR, antialias=True)
    true_t = torch.from_numpy(true8).permute(0, 3, 1, 2).double() / 255
    ref = [np.corrcoef(resized[i].double().ravel(), true_t[i].ravel())[0, 1] for i in range(2)]
    np.testing.assert_allclose(res.per_image, ref, rtol=0, atol=float32_atol(3 * 425 * 425))
    # Tensors (n, 3, H, W) give the same as arrays (n, H, W, 3); antialias changes a downsampled score.
    same = pixcorr(torch.from_numpy(pred8).permute(0, 3, 1, 2), torch.from_numpy(true8).permute(0, 3, 1, 2))
    np.testing.assert_allclose(same.per_image, res.per_image, rtol=0, atol=1e-12)
    assert pixcorr(pred8, true8, antialias=False).mean != res.mean


@pytest.mark.parametrize("metric", [pixcorr, ssim])
def test_bad_input(rng, metric):
    good = rng.random((2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"pred_images of shape \(2, 3, 32, 32\) and true_images of shape \(3, 3, 32, 32\)"):
        metric(good, rng.random((3, 32, 32, 3)))
    with pytest.raises(ValueError, match=r"'pred_images' .* \(n_images, height, width, 3\).* shape \(2, 32, 32\)"):
        metric(good[..., 0], good)
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*Got values in \[0.0\d+, 255\]"):
        metric(good * 255, good)
    with pytest.raises(ValueError, match="mixed shapes"):
        metric([good[0], good[1, :16]], good)
    with pytest.raises(ValueError, match="aspect ratios differ"):
        metric(rng.random((2, 32, 64, 3)), good)
    with pytest.raises(ValueError, match="'true_images' .* Got a tensor of shape \\(2, 32, 32, 3\\)"):
        metric(good, torch.from_numpy(good))
