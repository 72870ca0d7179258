"""Per-target scores of predicted responses and the :class:`EncodingScores` container.

Scores are computed column-wise (one value per voxel, vertex or channel):
Pearson correlation and the coefficient of determination R^2, then divided by
the noise ceiling. A target that is constant, or holds NaN, scores NaN (never
an arbitrary 0 or 1).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EncodingScores", "normalize_by_noise_ceiling", "pearson_r", "r2_score"]


def _as_2d(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"'{name}' must be an array of shape (n_samples, n_targets). Got shape {y.shape}.")
    return y


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _as_2d(y_true, "y_true"), _as_2d(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"'y_true' has shape {y_true.shape} but 'y_pred' has shape {y_pred.shape}.")
    if y_true.shape[0] < 2:
        raise ValueError(f"Scores need at least 2 samples; got {y_true.shape[0]}.")
    return y_true, y_pred


def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation between true and predicted values of every target.

    Parameters
    ----------
    y_true, y_pred : array of shape (n_samples, n_targets)

    Returns
    -------
    array of shape (n_targets,)
        NaN where either column is constant or holds NaN.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    dt = y_true - y_true.mean(axis=0)
    dp = y_pred - y_pred.mean(axis=0)
    denom = np.sqrt((dt**2).sum(axis=0) * (dp**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (dt * dp).sum(axis=0) / denom
    r[~(denom > 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination of every target, 1 - SS_res / SS_tot.

    Same as ``sklearn.metrics.r2_score(..., multioutput="raw_values")`` except
    that a constant target gives NaN (scikit-learn returns 0 or 1).

    Parameters
    ----------
    y_true, y_pred : array of shape (n_samples, n_targets)

    Returns
    -------
    array of shape (n_targets,)
        Can be negative (a prediction worse than the mean of ``y_true``).
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = 1.0 - ss_res / ss_tot
    r2[~(ss_tot > 0)] = np.nan
    return r2


def normalize_by_noise_ceiling(score: np.ndarray, noise_ceiling: np.ndarray, *, kind: str = "r2") -> np.ndarray:
    """Express a score as a fraction of what the noise ceiling allows.

    Parameters
    ----------
    score : array of shape (n_targets,)
        R^2 (``kind="r2"``) or Pearson r (``kind="r"``) on repeat-averaged test data.
    noise_ceiling : array of shape (n_targets,)
        Explainable fraction of variance of the same repeat-averaged data
        (e.g. :func:`neurodec.data.noise_ceiling_from_ncsnr`).
    kind : {"r2", "r"}
        R^2 is divided by the ceiling; r by its square root (the highest
        correlation a perfect model reaches is ``sqrt(NC)``).

    Returns
    -------
    array of shape (n_targets,)
        NaN where the ceiling is not positive or is NaN. Values can exceed 1
        when the ceiling is underestimated.
    """
    score = np.asarray(score, dtype=np.float64)
    nc = np.asarray(noise_ceiling, dtype=np.float64)
    if score.shape != nc.shape:
        raise ValueError(f"'score' has shape {score.shape} but 'noise_ceiling' has shape {nc.shape}.")
    if kind not in ("r2", "r"):
        raise ValueError(f"The 'kind' parameter must be 'r2' or 'r'. Got {kind!r} instead.")
    ceiling = nc if kind == "r2" else np.sqrt(np.clip(nc, 0.0, None))
    out = np.full_like(score, np.nan)
    ok = np.isfinite(nc) & (nc > 0)
    out[ok] = score[ok] / ceiling[ok]
    return out


@dataclasses.dataclass
class EncodingScores:
    """Held-out scores of an encoding model, one value per unit.

    Parameters
    ----------
    r, r2 : array of shape (n_units,)
        Pearson r and R^2 between predicted and repeat-averaged test responses;
        NaN for units excluded from the fit.
    noise_ceiling : array of shape (n_units,)
        Noise ceiling of the repeat-averaged test data (fraction, 0..1); NaN
        where unknown.
    units : pandas.DataFrame of n_units rows
        The responses' unit metadata (voxel indices, hemisphere/vertex,
        ``roi:<atlas>`` labels), used to write maps and ROI summaries.
    name : str
        The model's name, e.g. "resnet50/layer3".
    subject, space : str
        Subject and space of the units.
    modality : str
        "fmri", "meg", "ieeg" or "eeg" (chooses the output folder).
    info : dict
        Space information needed to write maps (``affine``, ``volume_shape``,
        ``n_vertices``).
    n_test : int
        Number of (repeat-averaged) test stimuli.
    p_values, q_values : array of shape (n_units,), optional
        Permutation p-values of r and their Benjamini-Hochberg adjustment.
    split_r2 : array of shape (n_spaces, n_units), optional
        Banded ridge's R^2 split over feature spaces (sums to the joint R^2).
    space_names : list of str, optional
        Names of the feature spaces of ``split_r2``.
    bootstrap : ROIBootstrap, optional
        Bootstrap distributions of the ROI means of r, R^2 and their
        normalized forms over resampled test stimuli (see
        :class:`neurodec.encoding.bootstrap.ROIBootstrap`); set by
        :meth:`EncodingModel.score` with ``n_bootstraps > 0``.
    status : array of str of shape (n_units,), optional
        Why a unit has or lacks a score: "scored", "excluded: non-finite
        training responses", "excluded: constant training responses",
        "non-finite test responses" or "constant test responses or prediction".
    best_alphas : array of shape (n_units,), optional
        The ridge penalty chosen for every unit (NaN for units not fit).
    fit_info : dict
        What was fit, for a report's Methods: the alpha grid, cross-validation,
        training and test sizes, repeat averaging, feature provenance
        (backbone, weights, layer, pooling, reduction), the noise ceiling's
        source and formula (see :meth:`EncodingModel.score`).
    """

    r: np.ndarray
    r2: np.ndarray
    noise_ceiling: np.ndarray
    units: pd.DataFrame
    name: str = "model"
    subject: str = ""
    space: str = ""
    modality: str = "fmri"
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    n_test: int = 0
    p_values: np.ndarray | None = None
    q_values: np.ndarray | None = None
    split_r2: np.ndarray | None = None
    space_names: list[str] | None = None
    bootstrap: Any = None
    status: np.ndarray | None = None
    best_alphas: np.ndarray | None = None
    fit_info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.units)
        for field in ("r", "r2", "noise_ceiling", "p_values", "q_values", "best_alphas"):
            value = getattr(self, field)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float64)
            if value.shape != (n,):
                raise ValueError(f"EncodingScores {field!r} must have shape ({n},). Got {value.shape}.")
            setattr(self, field, value)
        if self.split_r2 is not None:
            self.split_r2 = np.asarray(self.split_r2, dtype=np.float64)
            if self.split_r2.ndim != 2 or self.split_r2.shape[1] != n:
                raise ValueError(f"EncodingScores 'split_r2' must have shape (n_spaces, {n}). Got {self.split_r2.shape}.")
        if self.status is not None:
            self.status = np.asarray(self.status, dtype=object)
            if self.status.shape != (n,):
                raise ValueError(f"EncodingScores 'status' must have shape ({n},). Got {self.status.shape}.")
        self.units = self.units.reset_index(drop=True)

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def r_normalized(self) -> np.ndarray:
        """r divided by ``sqrt(noise_ceiling)``, array of shape (n_units,)."""
        return normalize_by_noise_ceiling(self.r, self.noise_ceiling, kind="r")

    @property
    def r2_normalized(self) -> np.ndarray:
        """R^2 divided by ``noise_ceiling``, array of shape (n_units,)."""
        return normalize_by_noise_ceiling(self.r2, self.noise_ceiling, kind="r2")

    def metric(self, name: str) -> np.ndarray:
        """One score by name: "r", "r2", "r_normalized", "r2_normalized",
        "noise_ceiling", "p_values" or "q_values"; array of shape (n_units,)."""
        allowed = ("r", "r2", "r_normalized", "r2_normalized", "noise_ceiling", "p_values", "q_values")
        if name not in allowed:
            raise ValueError(f"Unknown metric {name!r}; expected one of {list(allowed)}.")
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"EncodingScores {self.name!r} has no {name}; score with n_permutations > 0.")
        return value

    def significant(self, alpha: float = 0.05) -> np.ndarray:
        """Boolean mask of units whose FDR-adjusted p-value is at most ``alpha``."""
        q = self.metric("q_values")
        return np.isfinite(q) & (q <= alpha)

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: the unit metadata followed by every available score."""
        frame = self.units.copy()
        for name in ("r", "r2", "noise_ceiling", "r_normalized", "r2_normalized", "p_values", "q_values",
                     "best_alphas", "status"):
            value = getattr(self, name)
            if value is not None:
                frame["best_alpha" if name == "best_alphas" else name] = value
        if self.split_r2 is not None:
            names = self.space_names or [f"space{i}" for i in range(len(self.split_r2))]
            for band, values in zip(names, self.split_r2):
                frame[f"split_r2:{band}"] = values
        return frame

    def __repr__(self) -> str:
        return (
            f"<EncodingScores {self.name!r} {self.subject} n_units={self.n_units} n_test={self.n_test} "
            f"median r={np.nanmedian(self.r) if np.isfinite(self.r).any() else float('nan'):.3f}>"
        )
