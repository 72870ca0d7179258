"""A small simulated iEEG experiment for the transformer tests: high-gamma envelopes, speech vs music.

Channels sit on two depth shafts with MNI-like coordinates and region and lobe
labels. Every channel carries a smooth positive background envelope (AR(1)
noise, so neighbouring samples correlate as a real envelope does); in
"speech" trials the responsive channels add a bump of high-gamma power at a
planted latency.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurodec.data import Responses


def simulate_speech_music(
    rng: np.random.Generator,
    *,
    n_trials: int = 160,
    n_channels: int = 16,
    n_times: int = 128,
    sfreq: float = 128.0,
    responsive: tuple[int, ...] = (0, 1, 2, 3),
    effect: float = 1.0,
    latency: float = 0.35,
    test_fraction: float = 0.25,
) -> Responses:
    times = np.arange(n_times) / sfreq
    noise = rng.standard_normal((n_trials, n_channels, n_times))
    for t in range(1, n_times):  # AR(1) with coefficient 0.8: a smooth envelope
        noise[:, :, t] = 0.8 * noise[:, :, t - 1] + 0.6 * noise[:, :, t]
    speech = np.arange(n_trials) % 2 == 1
    rng.shuffle(speech)
    bump = np.exp(-0.5 * ((times - latency) / 0.08) ** 2)
    data = 1.0 + 0.3 * noise
    data[np.ix_(speech, list(responsive))] += effect * bump
    shaft = np.repeat(["LA", "RT"], [n_channels // 2, n_channels - n_channels // 2])
    contact = np.concatenate([np.arange(1, n_channels // 2 + 1), np.arange(1, n_channels - n_channels // 2 + 1)])
    units = pd.DataFrame({
        "name": [f"{s}{c}" for s, c in zip(shaft, contact)],
        "type": "seeg",
        "x": np.where(shaft == "LA", -30.0, 40.0) + 3.5 * contact,
        "y": np.where(shaft == "LA", -10.0, -25.0),
        "z": np.where(shaft == "LA", -20.0, 5.0),
        "region": [f"{s}-{'deep' if c <= 4 else 'superficial'}" for s, c in zip(shaft, contact)],
        "lobe": np.where(shaft == "LA", "temporal", "parietal"),
    })
    n_test = int(round(test_fraction * n_trials))
    trials = pd.DataFrame({
        "stimulus_id": np.where(speech, "speech", "music"),
        "session": 1, "run": 1, "repeat": 0,
        "split": ["train"] * (n_trials - n_test) + ["test"] * n_test,
        "condition": np.where(speech, "speech", "music"),
    })
    return Responses(data.astype(np.float32), trials, units, "sim01", modality="ieeg", space="MNI",
                     times=times, info={"sfreq": sfreq})
