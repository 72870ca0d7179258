"""Pure ridge solvers with per-target regularization chosen by cross-validation.

``solve_ridge_cv`` (features) and ``solve_kernel_ridge_cv`` (a precomputed
kernel) take torch tensors, never validate, and always return the same frozen
dataclass. Estimators (:class:`neurodec.ridge.RidgeCV`) validate and call them.

Notes
-----
Algorithm: see ``neurodec.ridge._primal`` and ``neurodec.ridge._dual``. In
short, one float64 eigendecomposition per fold (of the p x p training Gram,
obtained by downdating the full Gram, or of the n_train x n_train kernel),
targets rotated once into each fold's eigenbasis, all alphas in one GEMM, and a
one-pass refit that gives every target its own shrinkage.

Mixed precision: decompositions and Grams are float64; the products that
scale with the number of targets (``X^T Y``, rotations, the all-alpha GEMMs,
refit) run in ``dtype`` (float32 by default). TF32 tensor cores on CUDA are
off unless ``allow_tf32=True``; then a sample of targets is re-solved without
TF32 and a warning is issued if the scores or weights differ by more than a
tolerance.

FLOP model for exact K-fold CV over t targets (k folds, a alphas):
primal ``~2 n p t (2 + a) + 2 k p^2 t``; dual ``~2 n n_train t a + 2 k
n_train^2 t``; ``method="auto"`` picks the cheaper. The bound for exact
K-fold CV is ``~2 k n min(p, n_train) t``; himalaya's K-fold path costs
``~2 k n n_train t`` whatever p.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._device import resolve_device
from .._docs import fill_doc
from ._batching import TargetStager, choose_n_targets_batch, run_target_batches, to_host
from ._dual import DualPlan
from ._primal import PrimalPlan

__all__ = ["KernelRidgeCVResult", "RidgeCVResult", "solve_kernel_ridge_cv", "solve_ridge_cv"]

# Largest tolerated difference of CV scores (absolute) or weights (relative)
# between TF32 and float32 on the sample of targets the TF32 check re-solves.
TF32_TOLERANCE = 1e-3
_TF32_SAMPLE = 64


@dataclass(frozen=True)
class RidgeCVResult:
    """Result of :func:`solve_ridge_cv` (tensors on the solver's ``output_device``).

    Attributes
    ----------
    best_alphas : tensor of shape (n_targets,)
    cv_scores : tensor of shape (n_alphas, n_targets) or None
        Validation score averaged over folds (or leave-one-out score); None
        when no search was run (``splits=None``).
    coef : tensor of shape (n_features, n_targets) or None
        None when ``return_weights=False``.
    intercept : tensor of shape (n_targets,) or None
    method : {"primal", "dual"}
    n_targets_batch : int
        Target batch size in use at the end (after any out-of-memory back-off).
    """

    best_alphas: torch.Tensor
    cv_scores: torch.Tensor | None
    coef: torch.Tensor | None
    intercept: torch.Tensor | None
    method: str
    n_targets_batch: int


@dataclass(frozen=True)
class KernelRidgeCVResult:
    """Result of :func:`solve_kernel_ridge_cv` (tensors on the solver's ``output_device``).

    Attributes
    ----------
    best_alphas : tensor of shape (n_targets,)
    cv_scores : tensor of shape (n_alphas, n_targets) or None
        None when no search was run (``splits=None``).
    dual_coef : tensor of shape (n_samples, n_targets) or None
    intercept : tensor of shape (n_targets,) or None
        Predictions are ``K(X_new, X_train) @ dual_coef + intercept``.
    n_targets_batch : int
    """

    best_alphas: torch.Tensor
    cv_scores: torch.Tensor | None
    dual_coef: torch.Tensor | None
    intercept: torch.Tensor | None
    n_targets_batch: int


@contextmanager
def _tf32(enabled: bool):
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _n_targets(Y: Any) -> int:
    return int(Y.shape[1])


def _storage_device(device: torch.device, out_device: torch.device, nbytes: int) -> torch.device:
    """Where results accumulate: on the compute device when they fit a quarter of its free memory.

    Results kept on a CUDA device cost no copy per batch; when the caller
    wants them elsewhere they move once at the end (:func:`to_host`: pinned,
    non-blocking). Larger results go to ``out_device`` batch by batch.
    """
    if device == out_device or device.type != "cuda":
        return out_device
    free, _ = torch.cuda.mem_get_info(device)
    return device if nbytes <= free // 4 else out_device


def _move(t: torch.Tensor | None, out_device: torch.device) -> torch.Tensor | None:
    if t is None or t.device == out_device:
        return t
    return to_host(t) if out_device.type == "cpu" else t.to(out_device)


def _solve(
    plan: PrimalPlan | DualPlan,
    solve_batch: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]],
    Y: Any,
    alphas: torch.Tensor,
    *,
    n_weights: int,
    device: torch.device,
    out_device: torch.device,
    dtype: torch.dtype,
    n_targets_batch: int | None,
    return_weights: bool,
    allow_tf32: bool,
    batch_hook: Callable[[int], None] | None,
    verbose: bool | int,
):
    """Run ``solve_batch`` over target batches; gather results on ``out_device``.

    ``solve_batch`` returns ``(scores, weights, intercept)``; ``scores`` is
    None when no search is run (every target then takes ``alphas[0]``).
    """
    t = _n_targets(Y)
    search = plan.searches
    itemsize = torch.empty((), dtype=dtype).element_size()
    nbytes = t * (itemsize * (len(alphas) * search + (n_weights + 1 if return_weights else 0)) + 8)
    store = _storage_device(device, out_device, nbytes)
    cv_scores = torch.empty(len(alphas), t, dtype=dtype, device=store) if search else None
    best_alphas = torch.empty(t, dtype=torch.float64, device=store)
    weights = torch.empty(n_weights, t, dtype=dtype, device=store) if return_weights else None
    intercept = torch.empty(t, dtype=dtype, device=store) if return_weights else None
    if n_targets_batch is None:  # after the results are allocated: they count against free memory
        n_targets_batch = choose_n_targets_batch(t, plan.bytes_per_target(len(alphas)), device=device)
    use_tf32 = allow_tf32 and device.type == "cuda"
    checked = [not use_tf32]
    stager = TargetStager(Y, device=device, dtype=dtype)

    def process(start: int, stop: int) -> None:
        Yb = stager.get(start, stop)
        with _tf32(use_tf32):
            scores, w, b = solve_batch(Yb)
        stager.stage_next(start, stop)  # the device works on this batch meanwhile (no sync before here)
        if not checked[0]:
            _check_tf32(solve_batch, Yb, scores, w)
            checked[0] = True
        if search:
            cv_scores[:, start:stop] = scores.to(store)
            best_alphas[start:stop] = alphas[scores.argmax(0)].to(store)
        else:
            best_alphas[start:stop] = float(alphas[0])  # a Python scalar: the store may be another device
        if weights is not None:
            weights[:, start:stop] = w.to(store)
            intercept[start:stop] = b.to(store)

    final_batch = run_target_batches(
        t, n_targets_batch, process, device=device, batch_hook=batch_hook, verbose=verbose
    )
    return (*(_move(x, out_device) for x in (best_alphas, cv_scores, weights, intercept)), final_batch)


def _check_tf32(solve_batch, Yb: torch.Tensor, scores: torch.Tensor, w: torch.Tensor | None) -> None:
    """Re-solve a sample of targets without TF32 and warn if results moved."""
    idx = torch.linspace(0, Yb.shape[1] - 1, min(_TF32_SAMPLE, Yb.shape[1]), device=Yb.device).long()
    with _tf32(False):
        ref_scores, ref_w, _ = solve_batch(Yb[:, idx])
    score_err = 0.0 if scores is None else float((scores[:, idx] - ref_scores).abs().max())
    weight_err = 0.0
    if w is not None:
        weight_err = float((w[:, idx] - ref_w).norm() / ref_w.norm().clamp_min(1e-30))
    if max(score_err, weight_err) > TF32_TOLERANCE:
        warnings.warn(
            f"TF32 changed the ridge results on a sample of {len(idx)} targets (CV score difference "
            f"{score_err:.2e}, relative weight difference {weight_err:.2e}, tolerance {TF32_TOLERANCE:g}). "
            "Use allow_tf32=False for float32 accuracy.",
            UserWarning,
            stacklevel=4,
        )


def _alphas_for(alphas: Any, splits: Sequence | str | None, device: torch.device) -> torch.Tensor:
    """The alpha grid as a float64 tensor; without splits (no search) it must hold one alpha."""
    alphas_t = torch.as_tensor(np.asarray(alphas, dtype=np.float64), device=device).reshape(-1)
    if splits is None and len(alphas_t) != 1:
        raise ValueError(f"Without cross-validation splits (splits=None) there is no search: give one alpha. "
                         f"Got {len(alphas_t)}.")
    return alphas_t


def _chosen(alphas: torch.Tensor, scores: torch.Tensor | None, n_targets: int) -> torch.Tensor:
    """Each target's alpha: the best by CV score, or the only one when no search was run."""
    return alphas[scores.argmax(0)] if scores is not None else alphas.expand(n_targets)


def _choose_method(method: str, n_features: int, splits: Sequence | str | None, n_samples: int) -> str:
    if method != "auto":
        return method
    n_train = n_samples if splits is None or isinstance(splits, str) else max(len(tr) for tr, _ in splits)
    return "dual" if n_train < n_features else "primal"


@fill_doc
def solve_ridge_cv(
    X: torch.Tensor,
    Y: Any,
    alphas: Any,
    splits: Sequence[tuple[np.ndarray, np.ndarray]] | str | None,
    *,
    device: Any = "auto",
    dtype: torch.dtype = torch.float32,
    n_targets_batch: int | None = None,
    fit_intercept: bool = True,
    score: str = "r2",
    method: str = "auto",
    return_weights: bool = True,
    allow_tf32: bool = False,
    batch_hook: Callable[[int], None] | None = None,
    verbose: bool | int = False,
    output_device: Any = None,
) -> RidgeCVResult:
    """Ridge regression with one alpha per target chosen by cross-validation.

    Parameters
    ----------
    X : tensor of shape (n_samples, n_features)
    Y : tensor, array, memmap, h5py.Dataset or zarr.Array of shape (n_samples, n_targets)
        Read in column batches, so it may be larger than memory.
    alphas : array of shape (n_alphas,)
        Positive regularization strengths.
    splits : sequence of (train, val) integer index arrays, "loo" or None
        Cross-validation folds; "loo" gives exact leave-one-out (efficient
        closed form from the eigendecomposition); None runs no search: one
        alpha, taken by every target, and ``cv_scores`` None.
    %(device)s
    dtype : torch.dtype
        Dtype of the large products (decompositions are always float64).
    n_targets_batch : int, optional
        Targets per batch; by default the largest that fits half the free
        device memory (CUDA) or half the available RAM up to 2 GiB (CPU).
    fit_intercept : bool
        Centre features and targets on each training fold.
    score : {"r2", "pearson"}
        CV criterion maximized per target.
    method : {"auto", "primal", "dual"}
        "auto" uses the dual form when ``n_train < n_features``.
    return_weights : bool
        Refit on all samples and return ``coef`` and ``intercept``.
    allow_tf32 : bool
        Allow TF32 tensor cores on CUDA, with an accuracy check on a sample.
    batch_hook : callable, optional
        Called with the batch size before each batch; an out-of-memory error
        it raises is handled like a real one (halve the batch, retry).
    verbose : bool or int
        Progress bar over targets.
    output_device : {"cpu", "cuda", "cuda:N"}, torch.device or None
        Device of the returned tensors; None: the device ``X`` is on. Results
        that stay on the compute device are never copied; results for the
        host leave a CUDA device in one pinned, non-blocking copy.

    Returns
    -------
    result : RidgeCVResult
    """
    device = resolve_device(device)
    out_device = X.device if output_device is None else resolve_device(output_device)
    alphas_t = _alphas_for(alphas, splits, device)
    X = X.to(device)
    method = _choose_method(method, X.shape[1], splits, X.shape[0])
    if method == "primal":
        plan = PrimalPlan(X, splits, n_alphas=len(alphas_t), fit_intercept=fit_intercept, dtype=dtype)

        def solve_batch(Yb):
            Yc, y_mean = plan.centre_targets(Yb)
            XtY = plan.x.T @ Yc
            scores = plan.cv_scores(Yc, XtY, alphas_t, score) if plan.searches else None
            if not return_weights:
                return scores, None, None
            coef = plan.refit(XtY, _chosen(alphas_t, scores, Yb.shape[1]))
            return scores, coef, y_mean - plan.x_mean.to(dtype) @ coef

    else:
        X64 = X.to(torch.float64)
        x_mean = X64.mean(0) if fit_intercept else torch.zeros_like(X64[0])
        Xc64 = X64 - x_mean
        plan = DualPlan(
            Xc64 @ Xc64.T, splits, alphas=alphas_t, fit_intercept=fit_intercept, dtype=dtype, truncate=True
        )
        xc = Xc64.to(dtype)

        def solve_batch(Yb):
            scores = plan.cv_scores(Yb, score) if plan.searches else None
            if not return_weights:
                return scores, None, None
            dual, y_mean = plan.refit(Yb, _chosen(alphas_t, scores, Yb.shape[1]))
            coef = xc.T @ dual
            return scores, coef, y_mean - x_mean.to(dtype) @ coef

    best, cv_scores, coef, intercept, final_batch = _solve(
        plan,
        solve_batch,
        Y,
        alphas_t,
        n_weights=X.shape[1],
        device=device,
        out_device=out_device,
        dtype=dtype,
        n_targets_batch=n_targets_batch,
        return_weights=return_weights,
        allow_tf32=allow_tf32,
        batch_hook=batch_hook,
        verbose=verbose,
    )
    return RidgeCVResult(best, cv_scores, coef, intercept, method, final_batch)


def solve_kernel_ridge_cv(
    K: torch.Tensor,
    Y: Any,
    alphas: Any,
    splits: Sequence[tuple[np.ndarray, np.ndarray]] | str | None,
    *,
    device: Any = "auto",
    dtype: torch.dtype = torch.float32,
    n_targets_batch: int | None = None,
    fit_intercept: bool = True,
    score: str = "r2",
    return_weights: bool = True,
    allow_tf32: bool = False,
    batch_hook: Callable[[int], None] | None = None,
    verbose: bool | int = False,
    output_device: Any = None,
) -> KernelRidgeCVResult:
    """Kernel ridge regression with one alpha per target chosen by cross-validation.

    Parameters
    ----------
    K : tensor of shape (n_samples, n_samples)
        Training kernel (symmetric positive semi-definite); used in float64.
    Y, alphas, splits, device, dtype, n_targets_batch, fit_intercept, score, return_weights, allow_tf32, \
batch_hook, verbose
        As in :func:`solve_ridge_cv`.
    output_device : {"cpu", "cuda", "cuda:N"}, torch.device or None
        Device of the returned tensors; None: the device ``K`` is on.

    Returns
    -------
    result : KernelRidgeCVResult
    """
    device = resolve_device(device)
    out_device = K.device if output_device is None else resolve_device(output_device)
    alphas_t = _alphas_for(alphas, splits, device)
    plan = DualPlan(
        K.to(device=device, dtype=torch.float64), splits, alphas=alphas_t, fit_intercept=fit_intercept, dtype=dtype
    )

    def solve_batch(Yb):
        scores = plan.cv_scores(Yb, score) if plan.searches else None
        if not return_weights:
            return scores, None, None
        dual, y_mean = plan.refit(Yb, _chosen(alphas_t, scores, Yb.shape[1]))
        return scores, dual, plan.intercept(dual, y_mean)

    best, cv_scores, dual, intercept, final_batch = _solve(
        plan,
        solve_batch,
        Y,
        alphas_t,
        n_weights=K.shape[0],
        device=device,
        out_device=out_device,
        dtype=dtype,
        n_targets_batch=n_targets_batch,
        return_weights=return_weights,
        allow_tf32=allow_tf32,
        batch_hook=batch_hook,
        verbose=verbose,
    )
    return KernelRidgeCVResult(best, cv_scores, dual, intercept, final_batch)
