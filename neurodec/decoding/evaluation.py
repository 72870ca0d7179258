"""Evaluation hygiene for decoding: train-test similarity, the least-similar half, bootstrap intervals, subjects.

NSD's training and test images overlap semantically (Shirakawa et al. 2024,
"spurious reconstruction"): a decoder that only recognises near-duplicates of
its training images scores well on test images that have such duplicates.
:func:`evaluate_decoding` therefore reports every metric twice, on the whole
test set and on the half of the test images least similar to any training
image (cosine of their embeddings), each with a bootstrap confidence interval
over test images; :func:`aggregate_evaluations` summarizes runs across
subjects and seeds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._docs import fill_doc

__all__ = ["DecodingSummary", "aggregate_evaluations", "evaluate_decoding", "nearest_train_similarity",
           "per_sample_retrieval"]

#: Per-sample metrics on embeddings that :func:`evaluate_decoding` knows by name.
BUILTIN_METRICS = ("cosine", "image_retrieval", "brain_retrieval", "two_way_identification")
SUBSETS = ("all", "least-similar half")


def _matrix(name: str, x: Any) -> np.ndarray:
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"'{name}' must be an array of shape (n_samples, ...) with n_samples >= 1. Got shape {x.shape}.")
    x = x.reshape(x.shape[0], -1)
    if not np.isfinite(x).all():
        raise ValueError(f"'{name}' contains NaN or infinite values.")
    return x


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.finfo(np.float64).tiny)


def nearest_train_similarity(test_embeddings: Any, train_embeddings: Any, *, batch_size: int = 4096) -> np.ndarray:
    """Cosine similarity of each test image's embedding to its nearest training image's.

    Parameters
    ----------
    test_embeddings : array of shape (n_test, embed_dim)
        Embeddings of the test images (e.g. CLIP image embeddings; trailing axes flattened).
    train_embeddings : array of shape (n_train, embed_dim)
        Embeddings of the training images, same model.
    batch_size : int
        Test images per block (bounds memory at ``batch_size x n_train``).

    Returns
    -------
    array of shape (n_test,)
        ``max_j cos(test_i, train_j)``, in [-1, 1]; 1 for a test image whose
        embedding has a copy (up to scale) among the training images.
    """
    test = _unit_rows(_matrix("test_embeddings", test_embeddings))
    train = _unit_rows(_matrix("train_embeddings", train_embeddings))
    if test.shape[1] != train.shape[1]:
        raise ValueError(f"'test_embeddings' have {test.shape[1]} dimensions and 'train_embeddings' "
                         f"{train.shape[1]}; they must come from the same model.")
    return np.concatenate([(test[i : i + batch_size] @ train.T).max(axis=1)
                           for i in range(0, len(test), batch_size)])


def per_sample_retrieval(pred: Any, true: Any, *, n_way: int = 300, direction: str = "image") -> np.ndarray:
    """Each sample's probability of a top-1 hit in the retrieval protocol, exactly, without random draws.

    The protocol (:func:`neurodec.metrics.retrieval_top_k`) draws ``n_way``
    test samples and counts sample i as retrieved when no other drawn sample
    is at least as similar (cosine) to it. Given the ``b_i`` other samples of
    the whole test set that are at least as similar, a draw containing i is a
    hit with probability ``C(n - 1 - b_i, n_way - 1) / C(n - 1, n_way - 1)``
    (none of the ``n_way - 1`` companions is among them). The mean over
    samples is the expected value of ``retrieval_top_k(..., k=1)`` over its draws.

    Parameters
    ----------
    pred, true : arrays of shape (n_samples, ...)
        Decoded and true embeddings, in the same order (trailing axes flattened).
    n_way : int
        Candidates per draw (300 in the protocol); all samples when fewer.
    direction : {"image", "brain"}
        "image": brain -> image (rank the true embeddings for each
        prediction); "brain": image -> brain.

    Returns
    -------
    array of shape (n_samples,)
    """
    from scipy.special import gammaln

    if direction not in ("image", "brain"):
        raise ValueError(f"The 'direction' parameter must be 'image' or 'brain'. Got {direction!r}.")
    pred, true = _unit_rows(_matrix("pred", pred)), _unit_rows(_matrix("true", true))
    if pred.shape != true.shape:
        raise ValueError(f"'pred' and 'true' must have the same shape. Got {pred.shape} and {true.shape}.")
    n = len(pred)
    if n < 2:
        raise ValueError(f"Retrieval needs at least 2 samples. Got {n}.")
    w = min(int(n_way), n)
    sim = pred @ true.T if direction == "image" else true @ pred.T
    better = (sim >= np.diag(sim)[:, None]).sum(axis=1) - 1  # other samples at least as similar (ties: misses)
    free = n - 1 - better
    possible = free >= w - 1
    f = np.where(possible, free, w - 1)  # keeps gammaln's arguments positive where the probability is 0
    log_p = (gammaln(f + 1) - gammaln(f - (w - 1) + 1)) - (gammaln(n) - gammaln(n - (w - 1)))
    return np.where(possible, np.exp(np.minimum(log_p, 0.0)), 0.0)


def _builtin(name: str, n_way: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    from ..metrics import two_way_identification

    if name == "cosine":
        return lambda p, t: np.einsum("ij,ij->i", _unit_rows(_matrix("pred", p)), _unit_rows(_matrix("true", t)))
    if name in ("image_retrieval", "brain_retrieval"):
        direction = name.split("_")[0]
        return lambda p, t: per_sample_retrieval(p, t, n_way=n_way, direction=direction)
    return lambda p, t: two_way_identification(p, t).per_image


def _per_sample(name: str, fn: Callable, pred: Any, true: Any, n: int) -> np.ndarray:
    out = fn(pred, true)
    out = np.asarray(getattr(out, "per_image", out), dtype=np.float64)
    if out.shape != (n,):
        raise ValueError(f"Metric {name!r} must return one score per test sample, shape ({n},) (or an object with "
                         f".per_image). Got shape {out.shape}.")
    return out


def _seed(random_state: Any) -> int:
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    return int(np.random.default_rng(random_state).integers(2**31))


@fill_doc
def evaluate_decoding(
    pred: Any,
    true: Any,
    train_embeddings: Any,
    *,
    metrics: Sequence[str] | Mapping[str, Callable[[Any, Any], Any]] = ("cosine", "image_retrieval", "brain_retrieval"),
    test_embeddings: Any = None,
    n_way: int = 300,
    n_boot: int = 1000,
    level: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Every metric on all test images and on the least-similar half, with bootstrap intervals.

    Parameters
    ----------
    pred : array of shape (n_samples, ...)
        Decoded outputs (embeddings; or images when the metrics take images).
    true : array of shape (n_samples, ...)
        Ground truths in the same order.
    train_embeddings : array of shape (n_train, embed_dim)
        Embeddings of the training images, for each test image's similarity
        to its nearest training image (:func:`nearest_train_similarity`).
    metrics : sequence of str or mapping of str -> callable
        Names among "cosine", "image_retrieval", "brain_retrieval" (expected
        top-1 hit among ``n_way``, :func:`per_sample_retrieval`) and
        "two_way_identification" (on ``pred``/``true`` as features); or a
        mapping name -> ``fn(pred, true)`` returning one score per sample
        (or an object with ``per_image``, like :func:`neurodec.metrics.pixcorr`).
        A metric's score is the mean of its per-sample scores.
    test_embeddings : array of shape (n_samples, embed_dim), optional
        Embeddings of the test images in the space of ``train_embeddings``;
        default ``true`` (when the ground truths are those embeddings).
    n_way : int
        Candidates per retrieval draw.
    n_boot : int
        Bootstrap resamples of the test images (per subset).
    level : float
        Confidence level of the bias-corrected percentile intervals
        (:func:`neurodec.encoding.bootstrap.bias_corrected_interval`).
    %(random_state)s

    Returns
    -------
    pandas.DataFrame
        One row per (metric, subset), subsets "all" and "least-similar half"
        (the ``n // 2`` test images with the lowest nearest-training
        similarity, ties in test order); columns ``metric``, ``subset``,
        ``estimate``, ``ci_low``, ``ci_high``, ``n_samples``,
        ``mean_similarity`` (mean nearest-training similarity of the subset).

    Notes
    -----
    Per-sample scores are computed once, against the whole test set (a
    retrieval hit or an identification is judged among all test samples);
    a subset's score is the mean of its samples' scores, and the bootstrap
    resamples those samples with replacement.
    """
    from ..encoding.bootstrap import bias_corrected_interval, bootstrap_counts

    n = len(pred)
    if len(true) != n:
        raise ValueError(f"'pred' and 'true' must have one row per test sample. Got {n} and {len(true)}.")
    if n < 2:
        raise ValueError(f"evaluate_decoding needs at least 2 test samples. Got {n}.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise ValueError(f"The 'n_boot' parameter must be an integer >= 10. Got {n_boot!r}.")
    if not 0 < level < 1:
        raise ValueError(f"The 'level' parameter must be in (0, 1). Got {level!r}.")
    if isinstance(metrics, Mapping):
        functions = dict(metrics)
    else:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = [m for m in metrics if m not in BUILTIN_METRICS]
        if unknown or not metrics:
            raise ValueError(f"Unknown metric(s) {unknown or metrics!r}: pass names among {list(BUILTIN_METRICS)} "
                             "or a mapping name -> fn(pred, true) returning per-sample scores.")
        functions = {m: _builtin(m, n_way) for m in metrics}
    similarity = nearest_train_similarity(true if test_embeddings is None else test_embeddings, train_embeddings)
    if len(similarity) != n:
        raise ValueError(f"'test_embeddings' must have one row per test sample ({n}). Got {len(similarity)}.")
    subsets = {"all": np.arange(n), "least-similar half": np.sort(np.argsort(similarity, kind="stable")[: n // 2])}
    seed = _seed(random_state)
    rows = []
    for name, fn in functions.items():
        scores = _per_sample(name, fn, pred, true, n)
        for subset, idx in subsets.items():
            values = scores[idx]
            estimate = float(values.mean()) if len(values) else np.nan
            low = high = np.nan
            if len(values) >= 2:
                counts = bootstrap_counts(len(values), int(n_boot), seed)
                low, high = bias_corrected_interval(counts @ values / len(values), estimate, level=level)
            rows.append({"metric": name, "subset": subset, "estimate": estimate, "ci_low": low, "ci_high": high,
                         "n_samples": len(values), "mean_similarity": float(similarity[idx].mean())})
    return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True)
class DecodingSummary:
    """Results of :func:`aggregate_evaluations`.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per (metric, subset): ``mean`` over subjects of their
        seed-averaged estimates, ``sd_subjects`` (their standard deviation,
        ``ddof=1``), ``sd_seeds`` (the mean over subjects of the standard
        deviation over seeds, ``ddof=1``; NaN with one seed), ``n_subjects``, ``n_seeds``.
    per_subject : pandas.DataFrame
        Seed-averaged estimate of every (metric, subset) (rows) per subject (columns).
    """

    summary: pd.DataFrame
    per_subject: pd.DataFrame


def aggregate_evaluations(results: Mapping[Any, pd.DataFrame] | pd.DataFrame) -> DecodingSummary:
    """Summarize :func:`evaluate_decoding` tables across subjects and seeds.

    Parameters
    ----------
    results : mapping of (subject, seed) or subject -> pandas.DataFrame, or pandas.DataFrame
        The tables of every run, keyed by ``(subject, seed)`` (or by subject
        for one seed each); or one table with ``subject`` and ``seed`` columns.

    Returns
    -------
    DecodingSummary
    """
    if isinstance(results, pd.DataFrame):
        table = results.copy()
        if "subject" not in table.columns:
            raise ValueError("A combined results table needs a 'subject' column (and optionally 'seed').")
        if "seed" not in table.columns:
            table["seed"] = 0
    else:
        if not results:
            raise ValueError("'results' is empty: pass at least one evaluate_decoding table.")
        parts = []
        for key, frame in results.items():
            subject, seed = key if isinstance(key, tuple) and len(key) == 2 else (key, 0)
            parts.append(frame.assign(subject=subject, seed=seed))
        table = pd.concat(parts, ignore_index=True)
    missing = {"metric", "subset", "estimate"} - set(table.columns)
    if missing:
        raise ValueError(f"The results tables lack the column(s) {sorted(missing)} of evaluate_decoding's output.")
    keys = ["metric", "subset"]
    by_subject = table.groupby([*keys, "subject"], sort=False)["estimate"]
    subject_means = by_subject.mean()
    seed_sd = by_subject.std(ddof=1).groupby(level=keys, sort=False).mean()
    grouped = subject_means.groupby(level=keys, sort=False)
    summary = pd.DataFrame({
        "mean": grouped.mean(),
        "sd_subjects": grouped.std(ddof=1),
        "sd_seeds": seed_sd,
        "n_subjects": grouped.size(),
        "n_seeds": table.groupby(keys, sort=False)["seed"].nunique(),
    }).reset_index()
    per_subject = subject_means.unstack("subject")
    return DecodingSummary(summary=summary, per_subject=per_subject)
