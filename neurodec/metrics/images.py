"""Low-level reconstruction metrics: PixCorr and SSIM, as the NSD reconstruction papers compute them.

Both follow the evaluation of the MindEye lineage (Scotti et al. 2023, 2024),
the de-facto reference since Brain-Diffuser (Ozcelik & VanRullen 2023) did not
release its scripts:

1. Images are float in [0, 1] (uint8 is divided by 255).
2. Both reconstructions and ground truths are resized so that their shorter
   side is 425 px (NSD's stimulus size) with torchvision's tensor ``resize``,
   bilinear interpolation, ``antialias=True`` by default (torchvision >= 0.17's
   default; MindEye's scripts ran under torchvision releases whose tensor
   default was no antialiasing, ``antialias=False`` reproduces that; the two
   differ only when an image is downsampled).
3. PixCorr: Pearson r between the flattened RGB pixels (3 x 425 x 425 values)
   of a reconstruction and its ground truth, per image; the mean is reported.
4. SSIM: each image to grayscale with scikit-image's ``rgb2gray`` weights
   (ITU-R BT.709 luma, 0.2125 R + 0.7154 G + 0.0721 B), then Wang et al.'s
   SSIM with Gaussian weights (sigma 1.5, truncated at 3.5 sigma: an 11-tap
   window, reflected borders), population covariance, data range 1,
   constants K1 = 0.01, K2 = 0.03, averaged over the image without the
   5-pixel border: scikit-image's ``structural_similarity(gaussian_weights=True,
   sigma=1.5, use_sample_covariance=False, data_range=1.0)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ._arrays import as_image_batch, unit_float

__all__ = ["ImageScores", "pixcorr", "ssim"]

#: Shorter side, in pixels, both images are resized to (NSD's stimulus size).
IMAGE_SIZE = 425
#: scikit-image's ``rgb2gray`` weights (ITU-R BT.709).
GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)
_SIGMA, _TRUNCATE, _K1, _K2 = 1.5, 3.5, 0.01, 0.03


@dataclasses.dataclass(frozen=True)
class ImageScores:
    """A per-image metric and its mean.

    Attributes
    ----------
    mean : float
        The reported score: the mean of ``per_image``.
    per_image : array of shape (n_images,)
        The score of each reconstruction against its ground truth.
    """

    mean: float
    per_image: np.ndarray

    def __float__(self) -> float:
        return self.mean


def _resized_pairs(pred_images: Any, true_images: Any, *, caller: str, size: int, antialias: bool,
                   batch_size: int = 16):
    """Yield (pred, true) float64 arrays of shape (batch, 3, size', size'') after the protocol's resize."""
    import torch
    from .._torchvision import enable_torchvision

    tv = enable_torchvision()  # torchvision's ops may not match torch here; see neurodec._torchvision
    InterpolationMode = tv.transforms.InterpolationMode
    resize = tv.transforms.functional.resize

    pred = as_image_batch(pred_images, name="pred_images", caller=caller)
    true = as_image_batch(true_images, name="true_images", caller=caller)
    if pred.shape[0] != true.shape[0]:
        raise ValueError(
            f"{caller}: 'pred_images' and 'true_images' must hold the same number of images. Got pred_images of "
            f"shape {tuple(pred.shape)} and true_images of shape {tuple(true.shape)}."
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 11:
        raise ValueError(f"The 'size' parameter of {caller} must be an integer >= 11. Got {size!r}.")
    with torch.no_grad():
        for start in range(0, pred.shape[0], batch_size):
            # Batches bound memory: 1,000 float images of 425 px take 2 GB.
            bilinear = InterpolationMode.BILINEAR
            p = resize(unit_float(pred[start:start + batch_size]), size, bilinear, antialias=antialias)
            t = resize(unit_float(true[start:start + batch_size]), size, bilinear, antialias=antialias)
            if p.shape != t.shape:
                raise ValueError(
                    f"{caller}: after resizing the shorter side to {size} px, reconstructions and ground truths "
                    f"differ in shape ({tuple(p.shape[1:])} vs {tuple(t.shape[1:])}): their aspect ratios differ. "
                    f"Got pred_images of shape {tuple(pred.shape)} and true_images of shape {tuple(true.shape)}."
                )
            yield p.double().numpy(), t.double().numpy()


def pixcorr(pred_images: Any, true_images: Any, *, size: int = IMAGE_SIZE, antialias: bool = True) -> ImageScores:
    """Pixel correlation (PixCorr) of reconstructions with their ground truths.

    Parameters
    ----------
    pred_images, true_images : array of shape (n_images, height, width, 3) or tensor of shape (n_images, 3, height, width)
        Reconstructions and ground truths, uint8 or float in [0, 1], in the
        same order; the two sets may differ in size (both are resized).
    size : int
        Shorter side after resizing (425 in the protocol).
    antialias : bool
        Antialiasing of the bilinear downsampling (see the module notes).

    Returns
    -------
    ImageScores
        Pearson r per image and its mean (higher is better).

    Notes
    -----
    Follows MindEye's evaluation (Scotti et al. 2023, 2024), the PixCorr of
    Brain-Diffuser (Ozcelik & VanRullen 2023) and Takagi & Nishimoto (2023):
    resize to 425 px (bilinear), Pearson r over the flattened RGB pixels of
    each image pair, mean over images. A constant image has no correlation:
    its r is NaN.
    """
    scores = []
    for p, t in _resized_pairs(pred_images, true_images, caller="pixcorr", size=size, antialias=antialias):
        p = p.reshape(len(p), -1)
        t = t.reshape(len(t), -1)
        p = p - p.mean(axis=1, keepdims=True)
        t = t - t.mean(axis=1, keepdims=True)
        # einsum: row dot products without (batch, 3 x 425 x 425) temporaries
        cov, var_p, var_t = (np.einsum("ij,ij->i", a, b) for a, b in ((p, t), (p, p), (t, t)))
        with np.errstate(invalid="ignore", divide="ignore"):
            scores.append(cov / np.sqrt(var_p * var_t))
    per_image = np.concatenate(scores)
    return ImageScores(mean=float(per_image.mean()), per_image=per_image)


def _rgb_to_gray(images: np.ndarray) -> np.ndarray:
    """(n, 3, H, W) -> (n, H, W) with scikit-image's rgb2gray weights."""
    return np.tensordot(np.asarray(GRAY_WEIGHTS), images, axes=([0], [1]))


def _ssim_gray(x: np.ndarray, y: np.ndarray) -> float:
    """Mean Gaussian-weighted SSIM of two 2-D images in [0, 1] (population covariance, data range 1)."""
    from scipy.ndimage import gaussian_filter

    def blur(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma=_SIGMA, truncate=_TRUNCATE, mode="reflect")

    c1, c2 = _K1**2, _K2**2  # (K * data_range) ** 2 with data_range = 1
    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = int(_TRUNCATE * _SIGMA + 0.5)  # the filter's radius: border values see the reflection
    return float(s[pad:-pad, pad:-pad].mean())


def ssim(pred_images: Any, true_images: Any, *, size: int = IMAGE_SIZE, antialias: bool = True) -> ImageScores:
    """Structural similarity (SSIM) of reconstructions with their ground truths, in grayscale.

    Parameters
    ----------
    pred_images, true_images : array of shape (n_images, height, width, 3) or tensor of shape (n_images, 3, height, width)
        Reconstructions and ground truths, uint8 or float in [0, 1], in the
        same order; the two sets may differ in size (both are resized).
    size : int
        Shorter side after resizing (425 in the protocol).
    antialias : bool
        Antialiasing of the bilinear downsampling (see the module notes).

    Returns
    -------
    ImageScores
        SSIM per image and its mean (higher is better, 1 for identical images).

    Notes
    -----
    Resize to 425 px (bilinear), grayscale with ``rgb2gray``'s BT.709 weights,
    Gaussian-weighted SSIM (Wang et al. 2004) with sigma 1.5, population
    covariance and data range 1, as scikit-image's ``structural_similarity``
    computes it; the NSD reconstruction papers (Ozcelik & VanRullen 2023;
    Takagi & Nishimoto 2023; Scotti et al. 2023, 2024) report the mean.
    MindEye's released script passes ``multichannel=True`` with these 2-D
    grayscale images; scikit-image releases that map it to ``channel_axis=-1``
    then score each pixel column as a 1-D signal. This function computes the
    2-D SSIM the protocol describes.
    """
    scores = []
    for p, t in _resized_pairs(pred_images, true_images, caller="ssim", size=size, antialias=antialias):
        gp, gt = _rgb_to_gray(p), _rgb_to_gray(t)
        scores.extend(_ssim_gray(a, b) for a, b in zip(gp, gt))
    per_image = np.asarray(scores)
    return ImageScores(mean=float(per_image.mean()), per_image=per_image)
