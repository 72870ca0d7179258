"""iEEG preprocessing on ``mne.io.Raw``: line-noise notch, re-referencing, high-gamma envelope, resampling.

Each step calls mne's own function and returns a new Raw (the input is left
untouched), so results match mne applied directly:

- :func:`notch_line_noise`: ``Raw.notch_filter`` at the line frequency and its
  harmonics below Nyquist;
- :func:`rereference`: common average over the iEEG channels
  (``Raw.set_eeg_reference``, one joint average over ECoG, sEEG and DBS
  channels, bad channels excluded) or bipolar per shaft / strip
  (``mne.set_bipolar_reference`` on neighbouring contacts,
  :func:`bipolar_pairs`);
- :func:`high_gamma`: the multi-band Hilbert envelope (the convention of the
  naturalistic iEEG dataset: 8 log-spaced bands in 70-150 Hz, the amplitude of
  each band divided by its mean over time, the mean over bands, z-scored per
  channel);
- :func:`resample`: ``Raw.resample`` (FFT-based, with mne's padding).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from .._docs import fill_doc

__all__ = ["IEEG_TYPES", "bipolar_pairs", "high_gamma", "high_gamma_bands", "notch_line_noise", "rereference", "resample"]

#: mne channel types that are intracranial recordings (re-referenced and enveloped).
IEEG_TYPES = ("ecog", "seeg", "dbs")

_CONTACT = re.compile(r"^(.*?)(\d+)$")


def _ieeg_types(raw: Any) -> list[str]:
    present = set(raw.get_channel_types())
    types = [t for t in IEEG_TYPES if t in present]
    if not types:
        raise ValueError(
            f"The recording has no iEEG channel (types {IEEG_TYPES}); its channel types are {sorted(present)}."
        )
    return types


@fill_doc
def notch_line_noise(raw: Any, line_freq: float | None = None, *, verbose: bool | int = False) -> Any:
    """Notch-filter the line frequency and its harmonics below Nyquist on the iEEG channels.

    Parameters
    ----------
    raw : mne.io.Raw
        The recording (not modified).
    line_freq : float, optional
        Line frequency in Hz; default ``raw.info["line_freq"]``.
    %(verbose)s

    Returns
    -------
    mne.io.Raw
    """
    line_freq = raw.info["line_freq"] if line_freq is None else line_freq
    if not line_freq:
        raise ValueError("notch_line_noise: the recording has no 'line_freq' in its info; pass 'line_freq'.")
    freqs = np.arange(line_freq, raw.info["sfreq"] / 2.0, line_freq)
    return raw.copy().load_data().notch_filter(freqs, picks=_ieeg_types(raw), verbose=bool(verbose) or "error")


def bipolar_pairs(ch_names: Sequence[str], groups: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """Anodes and cathodes of a bipolar montage: neighbouring contacts of each shaft or strip.

    Contacts are parsed as ``<prefix><number>`` (e.g. "LA1", "LA2", ...). Within a
    group (the prefix, or ``groups`` when given), contacts are sorted by number
    and each contact ``n`` is paired with ``n + 1`` (anode ``n``, cathode
    ``n + 1``); a missing number (a removed contact) breaks the chain rather than
    pairing distant contacts.

    Parameters
    ----------
    ch_names : sequence of str
        Channel names.
    groups : sequence of str, optional
        Shaft / strip of each channel (e.g. the ``group`` column of channels.tsv);
        defaults to the name prefix.

    Returns
    -------
    anodes, cathodes : list of str
    """
    if groups is not None and len(groups) != len(ch_names):
        raise ValueError(f"bipolar_pairs: 'groups' has {len(groups)} entries for {len(ch_names)} channels.")
    contacts: dict[str, dict[int, str]] = {}
    for i, name in enumerate(ch_names):
        match = _CONTACT.match(name)
        if match is None:
            continue  # not a numbered contact (e.g. a trigger): it has no neighbour
        group = match.group(1) if groups is None else str(groups[i])
        contacts.setdefault(group, {})[int(match.group(2))] = name
    anodes, cathodes = [], []
    for numbered in contacts.values():
        for number in sorted(numbered):
            if number + 1 in numbered:
                anodes.append(numbered[number])
                cathodes.append(numbered[number + 1])
    if not anodes:
        raise ValueError(f"bipolar_pairs: no neighbouring numbered contacts among the channels {list(ch_names)}.")
    return anodes, cathodes


@fill_doc
def rereference(
    raw: Any,
    method: Literal["average", "bipolar"] = "average",
    *,
    groups: Sequence[str] | None = None,
    verbose: bool | int = False,
) -> Any:
    """Re-reference the iEEG channels: common average, or bipolar per shaft / strip.

    Parameters
    ----------
    raw : mne.io.Raw
        The recording (not modified).
    method : {"average", "bipolar"}
        "average" subtracts the mean of the good ECoG, sEEG and DBS channels
        (one joint average) from each of them; "bipolar" replaces the contacts
        by the differences of neighbours (:func:`bipolar_pairs`), named
        "LA1-LA2", located at the anode (mne's convention).
    groups : sequence of str, optional
        Shaft of each channel of ``raw`` for "bipolar" (default: name prefixes).
    %(verbose)s

    Returns
    -------
    mne.io.Raw
    """
    import mne

    level = bool(verbose) or "error"
    if method == "average":
        return raw.copy().load_data().set_eeg_reference("average", ch_type=_ieeg_types(raw), joint=True, verbose=level)
    if method == "bipolar":
        picks = set(_ieeg_types(raw))
        types = raw.get_channel_types()
        names = [n for n, t in zip(raw.ch_names, types) if t in picks and n not in raw.info["bads"]]
        if groups is not None:
            by_name = dict(zip(raw.ch_names, groups))
            groups = [by_name[n] for n in names]
        anodes, cathodes = bipolar_pairs(names, groups)
        return mne.set_bipolar_reference(raw.copy().load_data(), anodes, cathodes, copy=False, verbose=level)
    raise ValueError(f"The 'method' parameter of rereference must be 'average' or 'bipolar'. Got {method!r} instead.")


def high_gamma_bands(band: tuple[float, float] = (70.0, 150.0), n_bands: int = 8) -> np.ndarray:
    """Edges of ``n_bands`` log-spaced sub-bands of ``band``, array of shape (n_bands, 2)."""
    edges = np.geomspace(band[0], band[1], n_bands + 1)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def _band_amplitude(raw: Any, picks: np.ndarray, lo: float, hi: float, method: str, chunk: int) -> np.ndarray:
    if method == "fir":
        filtered = raw.copy().pick(picks).filter(lo, hi, verbose="error")
        return filtered.apply_hilbert(envelope=True, verbose="error").get_data()
    from mne.time_frequency import tfr_array_morlet

    # A Morlet wavelet is a Gaussian band-pass: centre sqrt(lo*hi), s.d. (hi - lo) / 2 Hz = centre / n_cycles.
    center = np.sqrt(lo * hi)
    n_cycles = center / ((hi - lo) / 2.0)
    data = raw.get_data(picks=picks)
    out = np.empty_like(data)
    for start in range(0, len(picks), chunk):  # channel chunks bound the complex intermediate's memory
        block = data[None, start : start + chunk]
        out[start : start + chunk] = np.abs(tfr_array_morlet(block, raw.info["sfreq"], [center], n_cycles)[0, :, 0])
    return out


@fill_doc
def high_gamma(
    raw: Any,
    *,
    band: tuple[float, float] = (70.0, 150.0),
    n_bands: int = 8,
    method: Literal["gaussian", "fir"] = "gaussian",
    zscore: bool = True,
    chunk: int = 32,
    verbose: bool | int = False,
) -> Any:
    """High-gamma envelope of the iEEG channels by the multi-band Hilbert method.

    For each of ``n_bands`` log-spaced sub-bands of ``band``: band-pass, take
    the amplitude of the analytic signal, divide by its mean over time (so
    every band weighs the same despite the 1/f spectrum); then average the
    bands, and z-score each channel over time.

    Parameters
    ----------
    raw : mne.io.Raw
        The recording (not modified). Non-iEEG channels are dropped.
    band : tuple of float
        (low, high) edges in Hz; ``high`` must be below Nyquist.
    n_bands : int
        Number of log-spaced sub-bands (:func:`high_gamma_bands`).
    method : {"gaussian", "fir"}
        "gaussian": Gaussian band-passes (centre ``sqrt(lo * hi)``, s.d.
        ``(hi - lo) / 2``) as complex Morlet wavelets
        (``mne.time_frequency.tfr_array_morlet``), whose modulus is the Hilbert
        amplitude of the band; "fir": mne's default FIR band-pass
        (``Raw.filter``) then ``Raw.apply_hilbert(envelope=True)``.
    zscore : bool
        Z-score each channel's envelope over time (else it is the mean of
        band amplitudes relative to their means: 1 is the average level).
    chunk : int
        Channels per Morlet convolution (memory bound).
    %(verbose)s

    Returns
    -------
    mne.io.Raw
        One channel per iEEG channel: its envelope, at the input's sampling rate.
    """
    import mne
    from tqdm.auto import tqdm

    if method not in ("gaussian", "fir"):
        raise ValueError(f"The 'method' parameter of high_gamma must be 'gaussian' or 'fir'. Got {method!r} instead.")
    if not 0 < band[0] < band[1] < raw.info["sfreq"] / 2.0:
        raise ValueError(
            f"The 'band' parameter of high_gamma must satisfy 0 < low < high < Nyquist "
            f"({raw.info['sfreq'] / 2.0} Hz). Got {band} instead."
        )
    raw = raw.copy().load_data()
    picks = mne.pick_types(raw.info, ecog=True, seeg=True, dbs=True, exclude=[])
    _ieeg_types(raw)
    total = np.zeros((len(picks), raw.n_times))
    for lo, hi in tqdm(high_gamma_bands(band, n_bands), desc="high-gamma bands", disable=not verbose):
        amplitude = _band_amplitude(raw, picks, lo, hi, method, chunk)
        total += amplitude / amplitude.mean(axis=1, keepdims=True)
    envelope = total / n_bands
    if zscore:
        envelope = (envelope - envelope.mean(axis=1, keepdims=True)) / envelope.std(axis=1, keepdims=True)
    out = raw.pick(picks)
    out._data[:] = envelope  # the Raw keeps its channel info, annotations and times
    return out


@fill_doc
def resample(raw: Any, sfreq: float, *, verbose: bool | int = False) -> Any:
    """Resample to ``sfreq`` Hz with ``Raw.resample`` (annotations keep their times).

    Parameters
    ----------
    raw : mne.io.Raw
        The recording (not modified).
    sfreq : float
        New sampling rate in Hz.
    %(verbose)s

    Returns
    -------
    mne.io.Raw
    """
    if not sfreq or sfreq <= 0:
        raise ValueError(f"The 'sfreq' parameter of resample must be a positive rate in Hz. Got {sfreq!r}.")
    return raw.copy().load_data().resample(sfreq, verbose=bool(verbose) or "error")
