"""Simulated fMRI subjects with a planted, known encoding model.

:func:`simulate_subject` places visual areas in a small volume and makes
each area's voxels a known linear function of one layer's stimulus features:

- early visual voxels ("V1v", "V1d", ... in ``prf-visualrois``) read out the
  features of ONE spatial cell of an early layer's grid-pooled features, the
  cell given by the voxel's position (a retinotopic map);
- face- and place-selective voxels (``floc-faces``, ``floc-places``) read out
  a late layer along the direction that separates their preferred category
  from the others, plus a small random component.

Every other voxel of the brain mask carries noise only. Single-trial
responses add noise with a per-voxel level set by a known noise-ceiling SNR
(``ncsnr = std(signal) / std(noise)``, NSD's definition), spatially
correlated across neighbouring voxels as in real fMRI. The truth (areas,
layers, ncsnr, noiseless signal) is returned so recovery can be checked.

The subject also gets a synthetic T1-weighted volume on the functional grid
(:func:`synthetic_t1`), drawn without randomness from the brain mask, for the
report's maps to have an anatomy to sit on. It is a cartoon, not a brain.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["SimulatedSubject", "simulate_subject", "simulate_trials", "synthetic_t1"]

#: ROI atlases, their label names (1..K, NSD's order) and which are simulated.
ROI_LABELS = {
    "prf-visualrois": ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"],
    "floc-faces": ["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"],
    "floc-places": ["OPA", "PPA", "RSC"],
    "streams": ["early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"],
}


@dataclasses.dataclass
class SimulatedSubject:
    """A simulated subject: anatomy, areas and noiseless responses.

    Attributes
    ----------
    mask : bool array of shape (X, Y, Z)
        The brain mask (the posterior region holding the simulated areas is ``rois["nsdgeneral"]``).
    rois : dict of str -> int array of shape (X, Y, Z)
        Label volumes per atlas, NSD's convention: -1 outside the brain, 0 no
        label, 1..K labels (see ``roi_labels``); includes ``nsdgeneral``.
    roi_labels : dict of str -> list of str
        Label names 1..K per atlas.
    affine : array of shape (4, 4)
    voxels : int array of shape (n_voxels, 3)
        Indices (i, j, k) of the brain-mask voxels, in C order.
    area : array of shape (n_voxels,) of str
        "early", "face", "place" or "none" per voxel.
    layer : array of shape (n_voxels,) of str
        The feature layer that drives each voxel ("" for noise voxels).
    signal : array of shape (n_images, n_voxels)
        Noiseless response of every voxel to every image (unit variance for
        driven voxels, zero for the others).
    ncsnr : array of shape (n_voxels,)
        Noise-ceiling SNR per voxel (0 for noise voxels).
    t1 : float32 array of shape (X, Y, Z)
        Synthetic T1-weighted anatomy on the same grid (:func:`synthetic_t1`).
    """

    mask: np.ndarray
    rois: dict[str, np.ndarray]
    roi_labels: dict[str, list[str]]
    affine: np.ndarray
    voxels: np.ndarray
    area: np.ndarray
    layer: np.ndarray
    signal: np.ndarray
    ncsnr: np.ndarray
    t1: np.ndarray


#: Synthetic T1-weighted intensities (arbitrary units, of the order of NSD's T1 volumes).
T1_INTENSITIES = {"white matter": 1000.0, "gray matter": 600.0, "csf": 150.0, "background": 40.0}


def _ellipsoid(shape: tuple[int, int, int]) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape, dtype=float) - 1) / 2
    radii = np.array(shape, dtype=float) / 2 - 0.5
    return (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1.0


def _depth(mask: np.ndarray) -> np.ndarray:
    """Distance in voxels from each True voxel to the nearest False one, the volume's outside counting as False."""
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1, 1:-1]


def synthetic_t1(mask: np.ndarray, *, cortex_thickness: float = 1.8) -> np.ndarray:
    """A synthetic T1-weighted volume for a brain mask: bright white matter, a darker gray-matter rim, dark CSF.

    Deterministic (no random draws) and anatomically a cartoon: inside the
    mask, white matter everywhere except a cortical ribbon along the mask's
    surface, whose thickness waxes and wanes over a smooth pattern of "folds"
    (with CSF-filled sulci where the pattern is deepest) and two lateral
    ventricles beside the midline; outside, a thin CSF shell around the brain
    and dark background. Intensities are :data:`T1_INTENSITIES`, lightly
    smoothed (Gaussian, sigma 0.5 voxel) for partial-volume edges.

    Parameters
    ----------
    mask : bool array of shape (X, Y, Z)
        The brain mask (e.g. an ellipsoid filling the volume).
    cortex_thickness : float
        Mean thickness of the gray-matter ribbon, in voxels.

    Returns
    -------
    float32 array of shape (X, Y, Z)
        The synthetic T1-weighted volume, on the mask's grid.
    """
    from scipy.ndimage import gaussian_filter

    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"'mask' of synthetic_t1 must be a 3-D volume. Got shape {mask.shape}.")
    shape = np.array(mask.shape, dtype=float)
    grid = np.indices(mask.shape).astype(float)
    # Position relative to the volume's centre, -1..1 along each axis.
    rel = (grid - ((shape - 1) / 2)[:, None, None, None]) / (shape / 2)[:, None, None, None]
    azimuth = np.arctan2(rel[1], rel[0])
    elevation = np.arctan2(rel[2], np.hypot(rel[0], rel[1]))
    folds = np.cos(7 * azimuth) * np.cos(4 * elevation)
    depth = _depth(mask)
    t1 = np.full(mask.shape, T1_INTENSITIES["background"])
    t1[(_depth(~mask) <= 1.5) & ~mask] = T1_INTENSITIES["csf"]
    t1[mask] = T1_INTENSITIES["white matter"]
    ribbon = mask & (depth <= cortex_thickness * (1 + 0.35 * folds))
    t1[ribbon] = T1_INTENSITIES["gray matter"]
    t1[mask & (depth <= 1.5) & (folds < -0.6)] = T1_INTENSITIES["csf"]  # sulci
    for side in (-1, 1):  # lateral ventricles
        ventricle = ((rel[0] - 0.2 * side) / 0.1) ** 2 + (rel[1] / 0.35) ** 2 + ((rel[2] - 0.05) / 0.2) ** 2 <= 1
        t1[ventricle & mask & ~ribbon] = T1_INTENSITIES["csf"]
    return gaussian_filter(t1, sigma=0.5).astype(np.float32)


def _standardize(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0)
    std = x.std(0)
    return x / np.where(std > 0, std, 1)


def simulate_subject(
    layer_features: dict[str, np.ndarray],
    categories: np.ndarray,
    *,
    early_layer: str,
    late_layer: str,
    grid: int,
    shape: tuple[int, int, int] = (14, 16, 10),
    ncsnr_range: tuple[float, float] = (0.4, 1.5),
    random_state: int | np.random.Generator | None = 0,
) -> SimulatedSubject:
    """Plant an encoding model of ``layer_features`` in a small simulated volume.

    Parameters
    ----------
    layer_features : dict of str -> array of shape (n_images, n_features)
        Features of every image per layer. The early layer's features must be
        grid-pooled with ``grid x grid`` cells, laid out channel-major
        (``n_features = n_channels * grid * grid``, cell fastest).
    categories : array of shape (n_images,) of str
        Category of each image ("face", "place", ...).
    early_layer, late_layer : str
        Keys of ``layer_features`` driving early and category-selective areas.
    grid : int
        Grid size of the early layer's pooling.
    shape : tuple of int
        Volume shape (X, Y, Z); the brain is the inscribed ellipsoid.
    ncsnr_range : tuple of float
        Noise-ceiling SNRs of driven voxels are log-uniform in this range.
    random_state : int, numpy.random.Generator or None
        Seed or generator: the same inputs and int seed give the same subject.
    """
    for key in (early_layer, late_layer):
        if key not in layer_features:
            raise ValueError(f"Layer {key!r} is not in layer_features (got {sorted(layer_features)}).")
    categories = np.asarray(categories)
    n_images = len(categories)
    early = np.asarray(layer_features[early_layer], dtype=np.float64)
    late = np.asarray(layer_features[late_layer], dtype=np.float64)
    if early.shape[0] != n_images or late.shape[0] != n_images:
        raise ValueError("layer_features and categories must describe the same images.")
    if early.shape[1] % (grid * grid):
        raise ValueError(f"The early layer has {early.shape[1]} features, not a multiple of grid**2 = {grid * grid}.")
    rng = np.random.default_rng(random_state)
    mask = _ellipsoid(shape)
    voxels = np.argwhere(mask)
    n_vox = len(voxels)
    X, Y, Z = shape

    # Anatomy: early visual cortex at the posterior end (low j), the category
    # areas on the ventral side (low k) in front of it, faces lateral, places medial.
    i, j, k = voxels.T.astype(float)
    area = np.full(n_vox, "none", dtype=object)
    early_sel = j < 0.3 * Y
    face_sel = ~early_sel & (j < 0.65 * Y) & (k < 0.45 * Z) & (np.abs(i - (X - 1) / 2) >= 0.25 * X)
    place_sel = ~early_sel & (j < 0.65 * Y) & (k < 0.45 * Z) & (np.abs(i - (X - 1) / 2) < 0.15 * X)
    area[early_sel], area[face_sel], area[place_sel] = "early", "face", "place"
    area = area.astype(str)

    signal = np.zeros((n_images, n_vox))
    layer = np.full(n_vox, "", dtype=object)
    n_channels = early.shape[1] // (grid * grid)
    early_cells = early.reshape(n_images, n_channels, grid * grid)
    # Retinotopy: the voxel's (i, k) position picks the grid cell it reads out.
    cell_x = np.clip((i / X * grid).astype(int), 0, grid - 1)
    cell_y = np.clip((k / Z * grid).astype(int), 0, grid - 1)
    for v in np.flatnonzero(area == "early"):
        weights = rng.normal(size=n_channels)
        signal[:, v] = early_cells[:, :, cell_y[v] * grid + cell_x[v]] @ weights
        layer[v] = early_layer
    late_z = _standardize(late)
    for name in ("face", "place"):
        preferred = categories == name
        if not preferred.any():
            continue
        direction = late_z[preferred].mean(0) - late_z[~preferred].mean(0)
        direction /= np.linalg.norm(direction) + 1e-12
        for v in np.flatnonzero(area == name):
            extra = rng.normal(size=late.shape[1]) / np.sqrt(late.shape[1])
            signal[:, v] = late_z @ (direction + 0.3 * extra)
            layer[v] = late_layer
    driven = area != "none"
    signal[:, driven] = _standardize(signal[:, driven])
    ncsnr = np.zeros(n_vox)
    lo, hi = np.log(ncsnr_range[0]), np.log(ncsnr_range[1])
    ncsnr[driven] = np.exp(rng.uniform(lo, hi, size=int(driven.sum())))

    rois, roi_labels = _roi_volumes(mask, voxels, area, shape)
    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    affine[:3, 3] = -np.array(shape) * 1.8 / 2
    return SimulatedSubject(
        mask=mask,
        rois=rois,
        roi_labels=roi_labels,
        affine=affine,
        voxels=voxels,
        area=area,
        layer=layer.astype(str),
        signal=signal,
        ncsnr=ncsnr,
        t1=synthetic_t1(mask),
    )


def _roi_volumes(
    mask: np.ndarray, voxels: np.ndarray, area: np.ndarray, shape: tuple[int, int, int]
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """NSD-style label volumes: -1 outside the brain, 0 unlabelled, 1..K labels."""
    def empty() -> np.ndarray:
        vol = np.full(shape, -1, dtype=np.int16)
        vol[mask] = 0
        return vol

    rois = {name: empty() for name in ("nsdgeneral", *ROI_LABELS)}
    ii, jj, kk = voxels.T
    # nsdgeneral: the posterior part of the brain, holding every driven voxel and
    # noise-only voxels between them (as the real mask holds unresponsive voxels).
    rois["nsdgeneral"][ii, jj, kk] = np.where((jj < 0.65 * shape[1]) | (area != "none"), 1, 0)
    # Early areas: split V1 (dorsal/ventral by k) from V2 by depth along j.
    early = area == "early"
    y_mid = np.median(jj[early]) if early.any() else 0
    z_mid = np.median(kk[early]) if early.any() else 0
    labels = ROI_LABELS["prf-visualrois"]
    name = np.where(jj < y_mid, np.where(kk < z_mid, "V1v", "V1d"), np.where(kk < z_mid, "V2v", "V2d"))
    codes = np.array([labels.index(n) + 1 for n in name])
    rois["prf-visualrois"][ii[early], jj[early], kk[early]] = codes[early]
    rois["floc-faces"][ii[area == "face"], jj[area == "face"], kk[area == "face"]] = (
        ROI_LABELS["floc-faces"].index("FFA-1") + 1
    )
    rois["floc-places"][ii[area == "place"], jj[area == "place"], kk[area == "place"]] = (
        ROI_LABELS["floc-places"].index("PPA") + 1
    )
    # streams: the early areas, and the face and place areas in the ventral stream (as FFA and PPA are).
    streams = ROI_LABELS["streams"]
    ventral = (area == "face") | (area == "place")
    rois["streams"][ii[early], jj[early], kk[early]] = streams.index("early") + 1
    rois["streams"][ii[ventral], jj[ventral], kk[ventral]] = streams.index("ventral") + 1
    return rois, {"nsdgeneral": ["nsdgeneral"], **{k: list(v) for k, v in ROI_LABELS.items()}}


def simulate_trials(
    subject: SimulatedSubject,
    trial_images: np.ndarray,
    *,
    spatial_correlation: float = 0.5,
    random_state: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Single-trial responses: the noiseless signal of each trial's image plus noise.

    Parameters
    ----------
    subject : SimulatedSubject
    trial_images : int array of shape (n_trials,)
        Row of ``subject.signal`` shown on each trial.
    spatial_correlation : float in [0, 1)
        Fraction of noise variance that is spatially smooth (shared by
        neighbouring voxels); the rest is independent per voxel.
    random_state : int, numpy.random.Generator or None
        Seed or generator of the noise.

    Returns
    -------
    array of shape (n_trials, n_voxels)
        Responses in percent signal change. For a driven voxel the noise
        standard deviation is ``1 / ncsnr`` (signal variance is 1); noise
        voxels get unit-variance noise.
    """
    from scipy.ndimage import gaussian_filter

    if not 0 <= spatial_correlation < 1:
        raise ValueError(f"'spatial_correlation' must be in [0, 1). Got {spatial_correlation}.")
    rng = np.random.default_rng(random_state)
    trial_images = np.asarray(trial_images)
    n_trials = len(trial_images)
    ii, jj, kk = subject.voxels.T
    smooth = np.empty((n_trials, len(ii)))
    for t in range(n_trials):
        field = gaussian_filter(rng.normal(size=subject.mask.shape), sigma=1.0)
        smooth[t] = field[ii, jj, kk]
    # Per-voxel normalization: the filter's variance shrinks near the volume edge.
    smooth /= smooth.std(axis=0, keepdims=True)
    white = rng.normal(size=(n_trials, len(ii)))
    noise = np.sqrt(spatial_correlation) * smooth + np.sqrt(1 - spatial_correlation) * white
    noise_sd = np.where(subject.ncsnr > 0, 1.0 / np.where(subject.ncsnr > 0, subject.ncsnr, 1), 1.0)
    return subject.signal[trial_images] + noise * noise_sd
