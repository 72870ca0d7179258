"""Synthetic encoding data shared by the ridge tests."""

from __future__ import annotations

import numpy as np
import pytest


def make_encoding_data(rng: np.random.Generator, n: int, p: int, t: int, *, offset: float = 3.0):
    """Features with a power-law spectrum and targets whose SNR spans two decades.

    Returns X (n, p), Y (n, t) and the planted weights (p, t); X and Y have
    non-zero means so that intercept handling matters.
    """
    scales = np.arange(1, p + 1) ** -0.7
    X = rng.standard_normal((n, p)) * scales + offset
    W = rng.standard_normal((p, t))
    signal = (X - offset) @ W
    snr = np.logspace(-1, 1, t)
    noise = rng.standard_normal((n, t)) * signal.std(0) / snr
    return X, signal + noise + rng.normal(5.0, 1.0, t), W


@pytest.fixture
def encoding_data(rng):
    return make_encoding_data(rng, 240, 24, 60)
