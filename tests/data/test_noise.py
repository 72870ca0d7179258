"""The simulators' noise has the spectrum it is asked for."""

from __future__ import annotations

import numpy as np
import pytest

from neurodec.data.noise import band_noise, colored_noise

SFREQ, N = 200.0, 4000


def _power(noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.rfftfreq(N, 1 / SFREQ), (np.abs(np.fft.rfft(noise, axis=-1)) ** 2).mean(0)


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_colored_noise_has_a_one_over_f_power_law(exponent):
    noise = colored_noise(np.random.default_rng(0), (64, N), SFREQ, exponent=exponent)
    freqs, power = _power(noise)
    band = (freqs > 1) & (freqs < 80)
    slope = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
    # 64 x 3,800 periodogram values: the fitted slope's sampling sd is ~0.01
    assert slope == pytest.approx(-exponent, abs=0.1)
    np.testing.assert_allclose(noise.std(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(noise.mean(1), 0.0, atol=1e-12)


def test_colored_noise_is_flat_below_f_min():
    noise = colored_noise(np.random.default_rng(1), (256, N), SFREQ, exponent=2.0, f_min=5.0)
    freqs, power = _power(noise)
    low = (freqs > 0) & (freqs < 5.0)
    # 256 averaged periodograms: each bin's mean power has a relative sd of 1/16
    assert power[low].max() / power[low].min() < 2.0


def test_band_noise_has_power_only_inside_the_band():
    noise = band_noise(np.random.default_rng(2), (32, N), SFREQ, (70.0, 90.0))
    freqs, power = _power(noise)
    inside = (freqs >= 70) & (freqs <= 90)
    assert power[~inside].max() < 1e-20 * power[inside].mean()
    np.testing.assert_allclose(noise.std(1), 1.0, rtol=1e-6)
