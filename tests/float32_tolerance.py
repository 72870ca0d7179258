"""Tolerances from the float32 rounding error of a computation, never from one run's output.

Two float32 computations of the same quantity that differ only in summation
order (another BLAS kernel, thread count, batch size or memory layout) can
differ by the rounding error of a sum of ``n_terms`` products: at most
``n_terms * eps32`` relative to the sum of the terms' magnitudes (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2002, sec. 3.1). Values
near zero therefore need an absolute tolerance on the scale of the terms,
not a relative one.
"""

from __future__ import annotations

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)


def float32_atol(n_terms: int, scale: float = 1.0) -> float:
    """Worst-case absolute error of a float32 sum of ``n_terms`` terms of magnitude ``scale``."""
    return n_terms * EPS32 * scale


def float32_rtol(n_terms: int) -> float:
    """The matching relative tolerance (``n_terms * eps32``)."""
    return n_terms * EPS32
