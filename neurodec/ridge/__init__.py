"""Ridge regression on CPU and GPU for voxel-wise encoding and decoding.

Per-target regularization chosen by K-fold cross-validation or exact
leave-one-out, for 10^4-10^6 targets streamed in batches. Attributes are
imported on first access so that ``import neurodec.ridge`` does not import
torch or scikit-learn.

Notes
-----
The algorithm and its FLOP model are described in
``neurodec.ridge.solvers`` (and ``_primal``/``_dual``).
"""

from __future__ import annotations

from .._lazy import lazy_exports

_ATTRIBUTES = {
    "RidgeCV": "estimators",
    "KernelRidgeCV": "estimators",
    "BlockedKFold": "splits",
    "solve_ridge_cv": "solvers",
    "solve_kernel_ridge_cv": "solvers",
    "RidgeCVResult": "solvers",
    "KernelRidgeCVResult": "solvers",
    "compute_kernel": "kernels",
    "BandedRidgeCV": "banded",
    "r2_score_split": "banded",
    "solve_banded_ridge_cv": "_banded_solver",
    "BandedRidgeCVResult": "_banded_solver",
    "generate_band_weights": "_banded_solver",
    "Delayer": "delays",
    "fit_distributed": "distributed",
    "gpu_cluster": "distributed",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _ATTRIBUTES)
