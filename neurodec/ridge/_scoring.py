"""Per-target scores (R^2, Pearson r) in torch, from data or from moments.

Two routes give the same numbers: from the residuals and predictions
themselves, or from their sufficient statistics (sums, cross products and
quadratic forms), which is what the primal solver's Gram route computes when
the validation block is taller than the number of features.

Constant targets: the scores reported to users (:func:`r2_targets`,
:func:`pearson_targets`, hence ``score_targets`` of the estimators) are NaN
for a constant target, as in :mod:`neurodec.encoding.scores`: its R^2 and
correlation are undefined. Inside the cross-validation search
(:func:`score_predictions`, :func:`score_from_moments`) a validation fold on
which a target is constant scores 0 instead: it carries no evidence for any
alpha, and a NaN would void the target's mean over folds.
"""

from __future__ import annotations

import torch

__all__ = [
    "SCORES",
    "pearson_from_moments",
    "pearson_targets",
    "r2_from_sse",
    "r2_targets",
    "score_from_moments",
    "score_predictions",
]

SCORES = ("r2", "pearson")


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    # Inside the CV search a constant validation target scores 0 (see the module docstring).
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def _nan_where_not(ok: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    return torch.where(ok, scores, torch.full_like(scores, float("nan")))


def r2_targets(Y_true: torch.Tensor, Y_pred: torch.Tensor) -> torch.Tensor:
    """R^2 of each column, as ``sklearn.metrics.r2_score(multioutput='raw_values')``.

    Parameters
    ----------
    Y_true, Y_pred : tensor of shape (n_samples, n_targets)

    Returns
    -------
    scores : tensor of shape (n_targets,)
        NaN for constant columns of ``Y_true`` (scikit-learn gives 0 or 1).
    """
    sse = ((Y_true - Y_pred) ** 2).sum(0)
    sst = ((Y_true - Y_true.mean(0)) ** 2).sum(0)
    return _nan_where_not(sst > 0, 1 - _safe_ratio(sse, sst))


def pearson_targets(Y_true: torch.Tensor, Y_pred: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each column pair; NaN where either is constant.

    Parameters
    ----------
    Y_true, Y_pred : tensor of shape (n_samples, n_targets)

    Returns
    -------
    scores : tensor of shape (n_targets,)
    """
    a = Y_true - Y_true.mean(0)
    b = Y_pred - Y_pred.mean(0)
    den = torch.sqrt((a * a).sum(0) * (b * b).sum(0))
    return _nan_where_not(den > 0, _safe_ratio((a * b).sum(0), den))


def score_predictions(R: torch.Tensor, P: torch.Tensor, sst: torch.Tensor, score: str, dim: int = 0) -> torch.Tensor:
    """Score predictions ``P`` of targets ``R`` (both shifted by the same constant).

    Parameters
    ----------
    R, P : tensor of shape (n_val, n_targets)
        Or any shapes that broadcast, samples along ``dim``.
    sst : tensor of shape (n_targets,)
        Sum of squares of the targets around their own mean.
    score : {"r2", "pearson"}
    dim : int
        The samples axis of ``P`` (and of ``R``).
    """
    if score == "r2":
        return r2_from_sse(((R - P) ** 2).sum(dim), sst)
    a, b = R - R.mean(dim, keepdim=True), P - P.mean(dim, keepdim=True)
    return _safe_ratio((a * b).sum(dim), torch.sqrt((a * a).sum(dim) * (b * b).sum(dim)))


def r2_from_sse(sse: torch.Tensor, sst: torch.Tensor) -> torch.Tensor:
    """Cross-validation R^2 from residual and total sums of squares (0 where ``sst`` is 0).

    Parameters
    ----------
    sse : tensor of shape (..., n_targets)
    sst : tensor of shape (n_targets,)
    """
    return torch.where(sst > 0, 1 - _safe_ratio(sse, sst), torch.zeros_like(sse))


def score_from_moments(
    *,
    rr: torch.Tensor,
    rp: torch.Tensor,
    pp: torch.Tensor,
    sum_r: torch.Tensor,
    sum_p: torch.Tensor,
    n: int,
    sst: torch.Tensor,
    score: str,
) -> torch.Tensor:
    """Score from moments: ``rr = sum R^2``, ``rp = sum R*P``, ``pp = sum P^2``.

    All arguments are tensors of shape (n_targets,) except ``n`` (rows) and
    ``score`` ({"r2", "pearson"}).
    """
    if score == "r2":
        return r2_from_sse(rr - 2 * rp + pp, sst)
    return pearson_from_moments(rp=rp, pp=pp, sum_r=sum_r, sum_p=sum_p, n=n, sst=sst)


def pearson_from_moments(
    *, rp: torch.Tensor, pp: torch.Tensor, sum_r: torch.Tensor, sum_p: torch.Tensor, n: int, sst: torch.Tensor
) -> torch.Tensor:
    """Cross-validation Pearson r from moments (as :func:`score_from_moments`; 0 for a constant side)."""
    cov = rp - sum_r * sum_p / n
    var_p = (pp - sum_p * sum_p / n).clamp_min(0)
    return _safe_ratio(cov, torch.sqrt(var_p * sst))
