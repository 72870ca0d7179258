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

import importlib
from typing import Any

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
}

__all__ = sorted(_ATTRIBUTES)


def __getattr__(name: str) -> Any:
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(f"{__name__}.{_ATTRIBUTES[name]}"), name)
    raise AttributeError(f"module 'neurodec.ridge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
