"""Feature-space scores of reconstructions: two-way identification and correlation distance.

Both compare feature vectors (from a network layer, see
:mod:`neurodec.metrics.features`) of reconstructions with those of their
ground truths, as the NSD reconstruction papers do (Ozcelik & VanRullen 2023;
Scotti et al. 2023, 2024).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import as_matrix_pair
from .images import ImageScores

__all__ = ["correlation_distance", "two_way_identification"]


def _standardized_rows(x: np.ndarray, name: str, caller: str) -> np.ndarray:
    """Rows centred and scaled to unit norm, so a dot product is a Pearson r."""
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    constant = np.flatnonzero(norms[:, 0] == 0)
    if constant.size:
        raise ValueError(
            f"{caller}: rows {constant[:10].tolist()} of {name!r} are constant; a correlation needs variance."
        )
    return x / norms


def two_way_identification(pred_features: Any, true_features: Any) -> ImageScores:
    """Two-way identification: how often a reconstruction correlates best with its own image.

    Parameters
    ----------
    pred_features : array of shape (n_images, n_features) or (n_images, ...)
        Features of the reconstructions (trailing axes are flattened, as the
        reference flattens convolutional maps).
    true_features : array of shape (n_images, n_features) or (n_images, ...)
        Features of the ground-truth images, in the same order.

    Returns
    -------
    ImageScores
        Per reconstruction, the fraction of the ``n_images - 1`` wrong ground
        truths whose features correlate less with its features than its own
        ground truth's do (ties count as failures), and the mean: a fraction
        in [0, 1], chance 0.5; papers report it in percent.

    Notes
    -----
    For reconstruction j with features p_j and ground truths t_i, the score is
    ``mean over i != j of [r(t_i, p_j) < r(t_j, p_j)]`` with Pearson r, as in
    MindEye's ``two_way_identification`` (``np.corrcoef`` of ground truths
    against reconstructions, compared with the diagonal, counted over ground
    truths) and Brain-Diffuser's reported AlexNet(2), AlexNet(5), Inception
    and CLIP scores (Ozcelik & VanRullen 2023; Scotti et al. 2023, 2024).
    """
    pred, true = as_matrix_pair(pred_features, true_features, names=("pred_features", "true_features"),
                                caller="two_way_identification")
    n = pred.shape[0]
    if n < 2:
        raise ValueError(f"two_way_identification needs at least 2 images; got {n}.")
    pred = _standardized_rows(pred, "pred_features", "two_way_identification")
    true = _standardized_rows(true, "true_features", "two_way_identification")
    r = true @ pred.T  # r[i, j] = corr(ground truth i, reconstruction j)
    congruent = np.diag(r)
    wins = (r < congruent[None, :]).sum(axis=0)  # the diagonal never wins against itself
    per_image = wins / (n - 1)
    return ImageScores(mean=float(per_image.mean()), per_image=per_image)


def correlation_distance(pred_features: Any, true_features: Any) -> ImageScores:
    """Mean correlation distance between each reconstruction's features and its ground truth's.

    Parameters
    ----------
    pred_features, true_features : array of shape (n_images, n_features) or (n_images, ...)
        Features of reconstructions and ground truths, in the same order
        (trailing axes are flattened).

    Returns
    -------
    ImageScores
        ``1 - r`` (Pearson r) per image pair and the mean: in [0, 2], lower is
        better, 0 for identical features.

    Notes
    -----
    ``scipy.spatial.distance.correlation`` per pair, averaged: the
    EfficientNet-B1 and SwAV-ResNet50 scores of MindEye (Scotti et al. 2023,
    2024), after Ozcelik & VanRullen (2023).
    """
    pred, true = as_matrix_pair(pred_features, true_features, names=("pred_features", "true_features"),
                                caller="correlation_distance")
    pred = _standardized_rows(pred, "pred_features", "correlation_distance")
    true = _standardized_rows(true, "true_features", "correlation_distance")
    per_image = 1.0 - np.einsum("ij,ij->i", pred, true)
    return ImageScores(mean=float(per_image.mean()), per_image=per_image)
