"""Simulated intracranial EEG with planted high-gamma responses.

:func:`simulate_ieeg` places sEEG shafts (contacts 3.5 mm apart) and an ECoG
grid (10 mm spacing) at MNI-like coordinates, each contact labelled with a
region and a lobe, and builds one continuous recording (a "film" run):

- a 1/f background per channel (power ~ 1/f**exponent), plus a component
  common to all channels (what a common-average reference removes), white
  measurement noise and line noise;
- on every channel, broadband high-gamma activity (70-150 Hz band-limited
  noise) whose amplitude envelope is constant on noise channels, follows a
  planted stimulus feature (non-negative and slow, like a sound envelope)
  ``latency`` seconds later on the channels of ``feature_regions``, and is
  raised by ``condition_gain`` during "speech" blocks on the channels of
  ``condition_regions`` (blocks alternate "music" / "speech" as in the
  naturalistic film dataset ds003688).

The truth (feature, latency, responsive and condition channels, noiseless
envelopes) is returned so recovery can be checked.
:func:`~neurodec.data.bids_ieeg_writer.write_bids_ieeg` writes a simulation
in the ds003688 BIDS layout.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from .._docs import fill_doc
from .noise import band_noise, colored_noise

__all__ = ["SimulatedIEEG", "simulate_ieeg"]

#: sEEG shafts: name prefix, region, lobe, deepest contact (MNI mm), outward direction.
SHAFTS = (
    ("LT", "superior temporal gyrus", "temporal", (-42.0, -22.0, 6.0), (-1.0, 0.0, 0.05)),
    ("LH", "hippocampus", "temporal", (-26.0, -22.0, -12.0), (-1.0, 0.0, 0.1)),
    ("LI", "insula", "insula", (-34.0, 6.0, 2.0), (-1.0, 0.0, 0.0)),
    ("LF", "inferior frontal gyrus", "frontal", (-38.0, 24.0, 10.0), (-1.0, 0.1, 0.0)),
    ("RT", "superior temporal gyrus", "temporal", (42.0, -22.0, 6.0), (1.0, 0.0, 0.05)),
    ("LO", "lateral occipital cortex", "occipital", (-30.0, -84.0, 2.0), (-1.0, -0.1, 0.0)),
)

#: Events of the film task (ds003688's codes).
EVENT_VALUES = {"start task": 9, "speech": 1, "music": 2, "end task": 4}


@dataclasses.dataclass
class SimulatedIEEG:
    """A simulated continuous iEEG recording and its planted truth.

    Attributes
    ----------
    data : array of shape (n_channels, n_times)
        Voltages in volts.
    sfreq : float
        Sampling rate in Hz.
    channels : pandas.DataFrame of n_channels rows
        ``name`` (e.g. "LT1"), ``type`` ("seeg" or "ecog"), ``group`` (shaft or
        grid name), ``region``, ``lobe``, and ``x``, ``y``, ``z`` in MNI-like mm.
    events : pandas.DataFrame
        ``onset``, ``duration`` (s), ``trial_type`` and ``value`` of the task
        events ("start task", alternating "music" / "speech" blocks, "end task").
    feature : array of shape (n_times,)
        The planted stimulus feature, in [0, 1], at the recording's samples.
    condition : int array of shape (n_times,)
        1 during speech blocks, 0 during music blocks, -1 outside the task.
    latency : float
        Seconds by which the responsive channels' envelope follows ``feature``.
    responsive : bool array of shape (n_channels,)
        Channels whose high-gamma envelope follows the feature.
    condition_channels : bool array of shape (n_channels,)
        Channels whose high-gamma power rises during speech.
    envelope : array of shape (n_channels, n_times)
        The noiseless high-gamma amplitude envelope of every channel, volts.
    line_freq : float
        Line frequency in Hz.
    """

    data: np.ndarray
    sfreq: float
    channels: pd.DataFrame
    events: pd.DataFrame
    feature: np.ndarray
    condition: np.ndarray
    latency: float
    responsive: np.ndarray
    condition_channels: np.ndarray
    envelope: np.ndarray
    line_freq: float

    @property
    def ch_names(self) -> list[str]:
        """Channel names, in data order."""
        return self.channels["name"].tolist()

    @property
    def times(self) -> np.ndarray:
        """Time of each sample in seconds, array of shape (n_times,)."""
        return np.arange(self.data.shape[1]) / self.sfreq

    def to_raw(self) -> Any:
        """The recording as an ``mne.io.RawArray`` with an MNI ("mni_tal") montage in metres."""
        import mne

        info = mne.create_info(self.ch_names, self.sfreq, self.channels["type"].tolist())
        info["line_freq"] = self.line_freq
        raw = mne.io.RawArray(self.data, info, verbose="error")
        positions = self.channels[["x", "y", "z"]].to_numpy() / 1000.0
        montage = mne.channels.make_dig_montage(dict(zip(self.ch_names, positions)), coord_frame="mni_tal")
        raw.set_montage(montage, verbose="error")
        return raw

    def to_responses(self, *, task: str = "film", session: str = "iemu", run: int = 1) -> Any:
        """The recording as one trial of :class:`~neurodec.data.Responses` (1, n_channels, n_times).

        Units carry the channel table with ``unit`` "V", ``coord_frame`` "MNI"
        and ``coord_units`` "mm", as :func:`~neurodec.data.bids_ieeg.load_bids_ieeg` returns them.
        """
        from .responses import Responses

        trials = pd.DataFrame(
            {"stimulus_id": [task], "session": [session], "run": [run], "repeat": [0], "split": ["train"]}
        )
        units = self.channels.assign(unit="V", coord_frame="MNI", coord_units="mm")
        info = {"sfreq": self.sfreq, "line_freq": self.line_freq, "events": self.events.copy(), "source": "simulation"}
        return Responses(
            data=self.data[None], trials=trials, units=units, subject="sim", modality="ieeg",
            space="MNI", times=self.times, info=info,
        )  # fmt: skip


def _smooth_feature(rng: np.random.Generator, n: int, sfreq: float, cutoff: float) -> np.ndarray:
    """A slow non-negative feature in [0, 1]: noise low-passed by a Gaussian of width ``cutoff`` Hz."""
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    spectrum = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)) * np.exp(
        -0.5 * (freqs / cutoff) ** 2
    )
    spectrum[0] = 0.0
    drive = np.fft.irfft(spectrum, n=n)
    return (drive - drive.min()) / (drive.max() - drive.min())


def _layout(n_shafts: int, contacts_per_shaft: int, grid_shape: tuple[int, int]) -> pd.DataFrame:
    rows = []
    for prefix, region, lobe, tip, direction in SHAFTS[:n_shafts]:
        step = np.asarray(direction) / np.linalg.norm(direction) * 3.5
        for k in range(contacts_per_shaft):
            x, y, z = np.asarray(tip) + k * step
            rows.append((f"{prefix}{k + 1}", "seeg", prefix, region, lobe, x, y, z))
    n_rows, n_cols = grid_shape
    for r in range(n_rows):  # a lateral temporal grid: its top row on the superior temporal gyrus
        for c in range(n_cols):
            region = "superior temporal gyrus" if r == 0 else "middle temporal gyrus"
            rows.append((f"G{r * n_cols + c + 1}", "ecog", "G", region, "temporal", -62.0, -40.0 + 10.0 * c, 4.0 - 10.0 * r))
    return pd.DataFrame(rows, columns=["name", "type", "group", "region", "lobe", "x", "y", "z"])


def _task_events(duration: float, block_duration: float, onset: float) -> pd.DataFrame:
    n_blocks = int((duration - 2 * onset) // block_duration)
    if n_blocks < 2:
        raise ValueError(
            f"simulate_ieeg: a duration of {duration} s holds {n_blocks} block(s) of 'block_duration' "
            f"{block_duration} s; at least 2 (music and speech) are needed."
        )
    rows = [(onset, 0.0, "start task")]
    for b in range(n_blocks):
        rows.append((onset + b * block_duration, block_duration, "music" if b % 2 == 0 else "speech"))
    rows.append((onset + n_blocks * block_duration, 0.0, "end task"))
    events = pd.DataFrame(rows, columns=["onset", "duration", "trial_type"])
    events["value"] = events["trial_type"].map(EVENT_VALUES)
    return events


@fill_doc
def simulate_ieeg(
    *,
    duration: float = 60.0,
    sfreq: float = 512.0,
    n_shafts: int = 4,
    contacts_per_shaft: int = 6,
    grid_shape: tuple[int, int] = (2, 4),
    latency: float = 0.15,
    feature_regions: tuple[str, ...] = ("superior temporal gyrus",),
    condition_regions: tuple[str, ...] = ("superior temporal gyrus", "insula"),
    feature_gain: float = 2.0,
    condition_gain: float = 0.5,
    block_duration: float = 30.0,
    background_std: float = 30e-6,
    common_std: float = 10e-6,
    high_gamma_std: float = 4e-6,
    noise_std: float = 1e-6,
    line_freq: float = 50.0,
    line_amplitude: float = 5e-6,
    exponent: float = 2.0,
    feature_cutoff: float = 1.0,
    random_state: int | np.random.Generator | None = 0,
) -> SimulatedIEEG:
    """Simulate a continuous iEEG recording with planted high-gamma responses.

    Parameters
    ----------
    duration : float
        Length of the recording in seconds.
    sfreq : float
        Sampling rate in Hz (ds003688 has 512, 2000 and 2048 Hz).
    n_shafts : int
        sEEG shafts, 0 to 6, taken in order from the module's ``SHAFTS`` table
        (LT superior temporal, LH hippocampus, LI insula, LF inferior frontal,
        RT right superior temporal, LO lateral occipital).
    contacts_per_shaft : int
        Contacts per shaft, named ``<prefix>1`` (deepest) to ``<prefix>N``.
    grid_shape : tuple of int
        (rows, columns) of a lateral temporal ECoG grid named G1..; its top row
        lies on the superior temporal gyrus. (0, 0) gives no grid.
    latency : float
        Seconds by which the responsive envelopes follow the feature.
    feature_regions, condition_regions : tuple of str
        Regions whose channels follow the feature / rise during speech.
    feature_gain : float
        The envelope is ``high_gamma_std * (1 + feature_gain * feature(t - latency))``.
    condition_gain : float
        Relative rise of the envelope during speech blocks on condition channels.
    block_duration : float
        Length of each music / speech block in seconds (30 in ds003688).
    background_std, common_std, high_gamma_std, noise_std, line_amplitude : float
        Standard deviations (amplitude for the line) of the components, volts.
    line_freq : float
        Line frequency in Hz.
    exponent : float
        Power-law exponent of the background spectrum.
    feature_cutoff : float
        Width in Hz of the Gaussian low-pass that makes the feature slow.
    %(random_state)s

    Returns
    -------
    SimulatedIEEG
    """
    if duration <= 0 or sfreq <= 0:
        raise ValueError(f"simulate_ieeg: 'duration' and 'sfreq' must be positive. Got {duration}, {sfreq}.")
    if not 0 <= n_shafts <= len(SHAFTS):
        raise ValueError(f"simulate_ieeg: 'n_shafts' must be between 0 and {len(SHAFTS)}. Got {n_shafts}.")
    if sfreq / 2 <= 150.0:
        raise ValueError(f"simulate_ieeg: 'sfreq' must exceed 300 Hz to hold 70-150 Hz activity. Got {sfreq}.")
    rng = np.random.default_rng(random_state)
    channels = _layout(n_shafts, contacts_per_shaft, grid_shape)
    if channels.empty:
        raise ValueError("simulate_ieeg: no channels; give 'n_shafts' > 0 or a non-empty 'grid_shape'.")
    n_channels, n_times = len(channels), int(round(duration * sfreq))
    lag = int(round(latency * sfreq))
    if not 0 <= lag < n_times:
        raise ValueError(f"simulate_ieeg: 'latency' must be in [0, duration). Got {latency}.")
    events = _task_events(duration, block_duration, onset=min(1.0, duration / 10))
    times = np.arange(n_times) / sfreq
    condition = np.full(n_times, -1, dtype=np.int64)
    for onset, length, kind in events[["onset", "duration", "trial_type"]].itertuples(index=False):
        if kind in ("music", "speech"):
            condition[(times >= onset) & (times < onset + length)] = int(kind == "speech")

    # The feature is drawn `lag` samples longer, so that its delayed copy is defined from the first sample.
    drive = _smooth_feature(rng, n_times + lag, sfreq, feature_cutoff)
    feature, delayed = drive[lag:], drive[:n_times]
    responsive = channels["region"].isin(feature_regions).to_numpy()
    condition_channels = channels["region"].isin(condition_regions).to_numpy()
    envelope = np.full((n_channels, n_times), high_gamma_std)
    envelope[responsive] *= 1.0 + feature_gain * delayed
    envelope[condition_channels] *= 1.0 + condition_gain * (condition == 1)

    data = background_std * colored_noise(rng, (n_channels, n_times), sfreq, exponent=exponent, f_min=1.0)
    data += common_std * colored_noise(rng, (1, n_times), sfreq, exponent=exponent, f_min=1.0)
    data += envelope * band_noise(rng, (n_channels, n_times), sfreq, (70.0, 150.0))
    data += noise_std * rng.standard_normal((n_channels, n_times))
    data += line_amplitude * np.sin(2 * np.pi * line_freq * times + rng.uniform(0, 2 * np.pi, (n_channels, 1)))
    return SimulatedIEEG(
        data=data, sfreq=float(sfreq), channels=channels, events=events, feature=feature, condition=condition,
        latency=lag / sfreq, responsive=responsive, condition_channels=condition_channels, envelope=envelope,
        line_freq=float(line_freq),
    )  # fmt: skip
