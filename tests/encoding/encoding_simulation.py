"""Planted ground truth for encoding tests: two feature "layers", voxels driven by one or the other.

Every voxel's single-trial response is ``signal + noise`` with the signal a
linear function of one layer's features (areas "A" and "B") or of features
the model never sees (area "hidden": reliable, but unpredictable), so the
noise ceiling of a repeat-averaged test set is known exactly:
``NC = s^2 / (s^2 + sigma^2 / n_repeats)`` with ``ncsnr = s / sigma``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurodec.data import Features, Responses

AFFINE = np.array([[2.0, 0, 0, -10], [0, 2.0, 0, -20], [0, 0, 2.0, -5], [0, 0, 0, 1]])
VOLUME_SHAPE = (6, 5, 4)


def simulate(
    rng: np.random.Generator,
    *,
    n_train: int = 120,
    n_test: int = 40,
    n_features: int = 10,
    n_per_area: int = 12,
    train_repeats: int = 2,
    test_repeats: int = 3,
    signal_sd: float = 1.0,
    noise_sd: float = 1.0,
):
    """Return (features {"A": Features, "B": Features}, responses, truth dict)."""
    n_stim = n_train + n_test
    ids = np.array([f"img{i:04d}" for i in rng.permutation(n_stim)])
    feats = {name: rng.standard_normal((n_stim, n_features)) for name in ("A", "B")}
    feats["hidden"] = rng.standard_normal((n_stim, n_features))
    areas = np.array(["A"] * n_per_area + ["B"] * n_per_area + ["hidden"] * n_per_area)
    n_units = len(areas)
    signal = np.zeros((n_stim, n_units))
    for name in ("A", "B", "hidden"):
        cols = areas == name
        w = rng.standard_normal((n_features, cols.sum()))
        s = feats[name] @ w
        signal[:, cols] = signal_sd * s / s.std(axis=0)
    rows, trials = [], []
    for split, stims, reps in (("train", range(n_train), train_repeats), ("test", range(n_train, n_stim), test_repeats)):
        for rep in range(reps):
            for s in stims:
                rows.append(s)
                trials.append({"stimulus_id": ids[s], "session": 1 + rep, "run": 1, "repeat": rep, "split": split})
    rows = np.array(rows)
    data = signal[rows] + noise_sd * rng.standard_normal((len(rows), n_units))
    flat = rng.choice(np.prod(VOLUME_SHAPE), n_units, replace=False)
    i, j, k = np.unravel_index(flat, VOLUME_SHAPE)
    ncsnr = np.full(n_units, signal_sd / noise_sd)
    units = pd.DataFrame({"i": i, "j": j, "k": k, "roi:sim": areas, "ncsnr": ncsnr})
    responses = Responses(
        data=data.astype(np.float32),
        trials=pd.DataFrame(trials),
        units=units,
        subject="subj01",
        space="func1pt8mm",
        info={"affine": AFFINE, "volume_shape": VOLUME_SHAPE},
    )
    features = {name: Features(feats[name], ids, name=f"sim/{name}") for name in ("A", "B")}
    nc = np.full(n_units, signal_sd**2 / (signal_sd**2 + noise_sd**2 / test_repeats))
    hidden = Features(feats["hidden"], ids, name="sim/hidden")
    truth = {"areas": areas, "noise_ceiling": nc, "signal": signal, "ids": ids, "hidden": hidden}
    return features, responses, truth
