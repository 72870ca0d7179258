"""Gaussian noise with a prescribed power spectrum, for the MEG and iEEG simulators."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["band_noise", "colored_noise"]


def _spectral_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sfreq: float, amplitude: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """White noise shaped by ``amplitude(freqs)`` along the last axis, without DC, at unit variance."""
    n = shape[-1]
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1) * amplitude(freqs)
    spectrum[..., 0] = 0.0
    out = np.fft.irfft(spectrum, n=n, axis=-1)
    return out / out.std(axis=-1, keepdims=True)


def colored_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sfreq: float, *, exponent: float = 1.0, f_min: float = 0.5
) -> np.ndarray:
    """Unit-variance noise whose power falls as ``1 / f**exponent`` along the last axis (1: pink noise).

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : tuple of int
        Output shape; the last axis is time.
    sfreq : float
        Sampling frequency in Hz.
    exponent : float
        Spectral exponent of the power (brain background: 1-2).
    f_min : float
        Below this frequency (Hz) the spectrum is flat, so slow drifts stay bounded.

    Returns
    -------
    array of shape ``shape``
        Zero mean and unit variance along the last axis.
    """
    return _spectral_noise(rng, shape, sfreq, lambda f: np.maximum(f, f_min) ** (-exponent / 2.0))


def band_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sfreq: float, band: tuple[float, float]
) -> np.ndarray:
    """Unit-variance noise with a flat spectrum inside ``band`` (Hz, inclusive) and nothing outside."""
    return _spectral_noise(rng, shape, sfreq, lambda f: ((f >= band[0]) & (f <= band[1])).astype(float))
