"""A small MEG simulation for the decoder's tests (the fsaverage -> CTF-275 one is the meg-loader's).

Each image has a random embedding; ``n_sources`` sources on a hemisphere of
sensors carry linear functions of it, each with a smooth spatial pattern,
through a biphasic evoked time course whose latency jitters from trial to
trial (real MEG's trial-to-trial variability). Spatially correlated noise
(a few random "brain noise" patterns with slow time courses) and white
sensor noise are added.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurodec.data import Features, Responses


def hemisphere(n: int) -> np.ndarray:
    """``n`` sensors spread on the upper half of a sphere of radius 0.1 m (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    z = 1 - i / n  # upper hemisphere only
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z**2)
    return 0.1 * np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def simulate_meg_decoding(
    *, n_train_images=300, n_test_images=100, n_repeats=2, n_channels=32, n_times=60, sfreq=100.0,
    n_dims=16, n_sources=16, latency=0.2, jitter=0.06, width=0.02, noise=1.0, seed=0,
):
    rng = np.random.default_rng(seed)
    pos = hemisphere(n_channels)
    centres = hemisphere(4 * n_sources)[rng.choice(4 * n_sources, n_sources, replace=False)]
    dist = np.linalg.norm(pos[:, None] - centres[None], axis=2)
    patterns = np.exp(-(dist / 0.04) ** 2)  # (n_channels, n_sources), smooth blobs
    mixing = rng.standard_normal((n_sources, n_dims)) / np.sqrt(n_dims)
    n_images = n_train_images + n_test_images
    emb = rng.standard_normal((n_images, n_dims))
    image_ids = np.array([f"img{i:04d}" for i in range(n_images)])
    rows = np.repeat(np.arange(n_images), n_repeats)
    times = np.arange(n_times) / sfreq - 0.1
    latency = latency + rng.uniform(-jitter, jitter, size=len(rows))
    u = (times[None] - latency[:, None]) / width
    course = -u * np.exp(-0.5 * u**2)  # derivative of a Gaussian: a biphasic evoked wave with zero mean
    amplitude = (emb[rows] @ mixing.T)  # (n_trials, n_sources)
    signal = np.einsum("cs,ns,nt->nct", patterns, amplitude, course)
    brain_noise = np.einsum("ck,nkt->nct", rng.standard_normal((n_channels, 4)),
                            np.cumsum(rng.standard_normal((len(rows), 4, n_times)), axis=2) / np.sqrt(n_times))
    data = signal + noise * (0.5 * brain_noise + rng.standard_normal(signal.shape))
    trials = pd.DataFrame({
        "stimulus_id": image_ids[rows], "session": 0, "run": 0,
        "repeat": np.tile(np.arange(n_repeats), n_images),
        "split": np.where(rows < n_train_images, "train", "test"),
    })
    units = pd.DataFrame({"name": [f"MEG{i:03d}" for i in range(n_channels)], "type": "mag",
                          "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2]})
    responses = Responses(data=data.astype(np.float32), trials=trials, units=units, subject="sim01", modality="meg",
                          space="sensor", times=times, info={"sfreq": sfreq})
    return responses, Features(emb, image_ids, name="simulated-embedding")
