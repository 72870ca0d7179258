"""Epoching and the published preprocessing of MEG runs, with mne's own functions.

Two published recipes are offered as presets of :func:`resolve_preprocessing`:

- ``"published"``: THINGS-MEG's (Hebart et al. 2023, ``step1_preprocessing.py``
  of ViCCo-Group/THINGS-data): drop the broken sensor ``MRO11-1609``;
  band-pass 0.1-40 Hz (:meth:`mne.io.Raw.filter`, mne's default FIR);
  epochs -0.1..1.3 s on the magnetometers without baseline (:class:`mne.Epochs`);
  z-score each trial and channel against its pre-stimulus baseline
  (:func:`mne.baseline.rescale`, ``mode="zscore"``); decimate to 200 Hz.
- ``"benchetrit"``: the same filter, epochs and decimation, then the scaling of
  Benchetrit, Banville & King (2023): baseline correction (subtract the
  pre-stimulus mean), a robust scaler per channel (median and interquartile
  range over the trials and times of each run, scikit-learn's
  :class:`~sklearn.preprocessing.RobustScaler`), and values clamped to +/-20.

A dict gives any mix of the keys of :data:`PREPROCESSING_KEYS`; missing keys
take the values of ``preprocessing=None`` (epochs -0.1..1.3 s at the
recorded rate, nothing else).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PREPROCESSING_KEYS", "PRESETS", "epoch_run", "resolve_preprocessing", "robust_scale"]

#: Keys of a preprocessing dict and their meaning when absent (``preprocessing=None``).
PREPROCESSING_KEYS: dict[str, Any] = {
    "drop_channels": (),  # sensor names removed before anything else
    "l_freq": None,  # high-pass edge, Hz (None: no high-pass)
    "h_freq": None,  # low-pass edge, Hz (None: no low-pass)
    "tmin": -0.1,  # epoch start relative to image onset, s
    "tmax": 1.3,  # epoch end, s
    "baseline": None,  # (start, end) subtracted by mne.Epochs, e.g. (None, 0)
    "sfreq": None,  # decimate epochs to this rate (must divide the recorded rate)
    "scaling": None,  # None, "baseline_zscore" or "robust"
    "clamp": None,  # clip scaled values to +/- clamp
}

PRESETS: dict[str, dict[str, Any]] = {
    "published": {
        "drop_channels": ("MRO11-1609",),
        "l_freq": 0.1,
        "h_freq": 40.0,
        "tmin": -0.1,
        "tmax": 1.3,
        "baseline": None,
        "sfreq": 200.0,
        "scaling": "baseline_zscore",
        "clamp": None,
    },
    "benchetrit": {
        "drop_channels": ("MRO11-1609",),
        "l_freq": 0.1,
        "h_freq": 40.0,
        "tmin": -0.1,
        "tmax": 1.3,
        "baseline": (None, 0.0),
        "sfreq": 200.0,
        "scaling": "robust",
        "clamp": 20.0,
    },
}

_SCALINGS = (None, "baseline_zscore", "robust")


def resolve_preprocessing(preprocessing: None | str | dict[str, Any]) -> dict[str, Any]:
    """The full preprocessing dict of a preset name, a partial dict or None.

    Raises
    ------
    ValueError
        Naming an unknown preset, key or scaling, or an empty epoch window.
    """
    if preprocessing is None:
        params = dict(PREPROCESSING_KEYS)
    elif isinstance(preprocessing, str):
        if preprocessing not in PRESETS:
            raise ValueError(
                f"The 'preprocessing' parameter must be None, a dict or one of {sorted(PRESETS)}. "
                f"Got {preprocessing!r} instead."
            )
        params = dict(PRESETS[preprocessing])
    elif isinstance(preprocessing, dict):
        unknown = sorted(set(preprocessing) - set(PREPROCESSING_KEYS))
        if unknown:
            raise ValueError(
                f"Unknown key(s) {unknown} in the 'preprocessing' dict; known keys: {sorted(PREPROCESSING_KEYS)}."
            )
        params = {**PREPROCESSING_KEYS, **preprocessing}
    else:
        raise ValueError(f"The 'preprocessing' parameter must be None, a str or a dict. Got {type(preprocessing)}.")
    if params["scaling"] not in _SCALINGS:
        raise ValueError(f"preprocessing['scaling'] must be one of {list(_SCALINGS)}. Got {params['scaling']!r}.")
    if not params["tmin"] < params["tmax"]:
        raise ValueError(f"preprocessing needs tmin < tmax. Got tmin={params['tmin']}, tmax={params['tmax']}.")
    if params["scaling"] == "baseline_zscore" and params["tmin"] >= 0:
        raise ValueError("preprocessing['scaling']='baseline_zscore' needs a pre-stimulus baseline: tmin < 0.")
    params["drop_channels"] = tuple(params["drop_channels"] or ())
    return params


def decimation_factor(sfreq: float, target: float | None, where: str) -> int:
    """Integer factor from ``sfreq`` to ``target`` Hz; refuses a rate that does not divide."""
    if target is None:
        return 1
    factor = sfreq / float(target)
    if factor < 1 or abs(factor - round(factor)) > 1e-6:
        raise ValueError(
            f"{where}: cannot decimate {sfreq:g} Hz to preprocessing['sfreq']={target:g} Hz (not an integer "
            "factor). Resample the runs first with the loader's resample= option to a multiple of it."
        )
    return int(round(factor))


def robust_scale(data: np.ndarray, clamp: float | None = None) -> np.ndarray:
    """Scale each channel by its median and interquartile range over trials and times.

    Parameters
    ----------
    data : array of shape (n_trials, n_channels, n_times)
    clamp : float, optional
        Clip the scaled values to ``[-clamp, clamp]``.

    Returns
    -------
    array of shape (n_trials, n_channels, n_times)
        scikit-learn's ``RobustScaler`` fitted per channel on all samples.
    """
    from sklearn.preprocessing import RobustScaler

    n_trials, n_channels, n_times = data.shape
    flat = np.moveaxis(data, 1, 2).reshape(-1, n_channels)
    scaled = RobustScaler().fit_transform(flat)
    out = np.moveaxis(scaled.reshape(n_trials, n_times, n_channels), 2, 1)
    return np.clip(out, -clamp, clamp) if clamp is not None else out


def epoch_run(raw: Any, samples: np.ndarray, params: dict[str, Any], *, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Filter a run, cut epochs at ``samples`` and scale them as ``params`` say.

    Parameters
    ----------
    raw : mne.io.Raw
        The run, preloaded, holding only the channels to epoch.
    samples : int array of shape (n_trials,)
        Image onsets, in samples of ``raw`` (``raw.first_samp`` included).
    params : dict
        From :func:`resolve_preprocessing`.
    where : str
        The run's file, for error messages.

    Returns
    -------
    data : array of shape (n_trials, n_channels, n_times)
        In the raw's units (T) unless scaled.
    times : array of shape (n_times,)
    """
    import mne

    decim = decimation_factor(raw.info["sfreq"], params["sfreq"], where)
    if params["l_freq"] is not None or params["h_freq"] is not None:
        raw.filter(params["l_freq"], params["h_freq"], verbose=False)
    events = np.c_[samples, np.zeros_like(samples), np.ones_like(samples)].astype(np.int64)

    def cut(tmax: float, baseline: Any, decim: int) -> Any:
        epochs = mne.Epochs(
            raw, events, tmin=params["tmin"], tmax=tmax, baseline=baseline, decim=decim, picks="all", reject=None,
            flat=None, preload=True, reject_by_annotation=False, proj=False, verbose=False,
        )
        if len(epochs) != len(samples):
            raise RuntimeError(f"{where}: mne.Epochs dropped {len(samples) - len(epochs)} epoch(s): {epochs.drop_log}")
        return epochs

    epochs = cut(params["tmax"], params["baseline"], decim)
    data = epochs.get_data(copy=False)
    if params["scaling"] == "baseline_zscore":
        # THINGS-MEG z-scores at the recorded rate and decimates afterwards; the baseline statistics
        # come from the full-rate pre-stimulus samples (a short second cut), so the result equals
        # mne.baseline.rescale(mode="zscore") on full-rate epochs followed by decimation.
        base = cut(0.0, params["baseline"], 1).get_data(copy=False)
        data = (data - base.mean(-1, keepdims=True)) / base.std(-1, keepdims=True)
    elif params["scaling"] == "robust":
        data = robust_scale(data, params["clamp"])
    if params["clamp"] is not None and params["scaling"] != "robust":
        data = np.clip(data, -params["clamp"], params["clamp"])
    return data, epochs.times.copy()
