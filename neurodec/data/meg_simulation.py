"""Simulated MEG with planted, stimulus-driven sources, projected to a CTF-275 array.

Each stimulus has a known embedding (array of shape (n_stimuli, n_dims)).
A few cortical dipoles (:mod:`~neurodec.data.meg_head_model`: fsaverage's
inner skull, sphere conductor, mne's canonical CTF-275 sensors) respond to
every image with an evoked wave peaking at a planted latency (by default two
occipital sources at 100 ms and two ventral occipito-temporal sources at
170 ms), with trial-to-trial latency jitter. Each source's amplitude on a trial is
``base + embedding @ weights[source]``: a linear function of the shown image's
embedding, so a decoder from sensors to embeddings has something to find.

Noise is brain-like plus sensor noise: ``n_noise_sources`` dipoles spread
over the cortex-like surface carry independent 1/f ("pink") time courses,
projected through the same forward model (spatially correlated, as real
background activity), plus white noise on each sensor (``sensor_noise``: its
share of the total noise power). ``snr`` is the ratio of the power of the
stimulus-driven signal to the noise power, both summed over channels and over
the samples from stimulus onset to ``tmax``.

:func:`simulate_meg_epochs` returns epochs in memory;
:func:`~neurodec.data.fixtures.things_meg.write_things_meg_bids` renders
continuous runs from the same model and writes them in THINGS-MEG's layout.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .._docs import fill_doc
from .meg_head_model import HeadModel, make_ctf275_info, make_head_model
from .noise import colored_noise
from .responses import Responses

__all__ = ["MEGSimulation", "plant_sources", "simulate_meg_epochs"]

#: Width (standard deviation, s) of the planted evoked waves: an M100-like deflection lasts ~50 ms.
WAVE_WIDTH = 0.02


@dataclasses.dataclass
class MEGSimulation:
    """The planted truth of a MEG simulation.

    Attributes
    ----------
    info : mne.Info
        The sensors (CTF-275 axial gradiometers) and sampling rate.
    head_model : HeadModel
    positions, orientations : arrays of shape (n_sources, 3)
        Planted dipoles (head frame, metres; unit vectors).
    latencies : array of shape (n_sources,)
        Peak latency of each source's evoked wave, seconds after onset.
    base : array of shape (n_sources,)
        Amplitude every image evokes, A·m.
    weights : array of shape (n_sources, n_dims)
        Amplitude added per unit of each embedding dimension, A·m.
    jitter : float
        Standard deviation of the trial-to-trial latency jitter, seconds.
    patterns : array of shape (n_channels, n_sources)
        Sensor field of each planted source at unit amplitude (T per A·m).
    noise_patterns : array of shape (n_channels, n_noise_sources)
        Sensor field of each background source.
    noise_scale : float
        Amplitude (A·m) of the unit-variance background time courses.
    sensor_noise_std : float
        Standard deviation of the white sensor noise, T.
    snr : float
        Signal-to-noise power ratio over the post-onset samples.
    trial_latencies : array of shape (n_trials, n_sources)
        The jittered latency of each source on each trial (in-memory epochs only).
    """

    info: object
    head_model: HeadModel
    positions: np.ndarray
    orientations: np.ndarray
    latencies: np.ndarray
    base: np.ndarray
    weights: np.ndarray
    jitter: float
    patterns: np.ndarray
    noise_patterns: np.ndarray
    noise_scale: float = 0.0
    sensor_noise_std: float = 0.0
    snr: float = 1.0
    trial_latencies: np.ndarray | None = None

    def amplitudes(self, embeddings: np.ndarray) -> np.ndarray:
        """Amplitude of each source for each embedding row, array of shape (n_rows, n_sources), A·m."""
        return self.base[None, :] + np.asarray(embeddings) @ self.weights.T

    def source_waves(self, times: np.ndarray, latencies: np.ndarray) -> np.ndarray:
        """Unit evoked waves at ``times`` (n_times,) for latencies (..., n_sources): (..., n_sources, n_times)."""
        return np.exp(-0.5 * ((times - np.asarray(latencies)[..., None]) / WAVE_WIDTH) ** 2)


def _nearest(cortex: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return np.array([int(np.argmin(((cortex - t) ** 2).sum(1))) for t in targets])


@fill_doc
def plant_sources(
    n_dims: int,
    *,
    sfreq: float = 200.0,
    latencies: tuple[float, ...] = (0.1, 0.17),
    base_amplitude: float = 20e-9,
    modulation: float = 10e-9,
    jitter: float = 0.01,
    n_noise_sources: int = 100,
    random_state: int | np.random.Generator | None = 0,
) -> MEGSimulation:
    """Place the stimulus-driven and background sources of a simulation (no noise level yet).

    Parameters
    ----------
    n_dims : int
        Dimension of the stimulus embeddings the sources read out.
    sfreq : float
        Sampling frequency of the sensors, Hz.
    latencies : tuple of float
        Peak latencies (s). Each latency gets two sources, one per hemisphere:
        the first latency at the occipital pole, the others progressively
        more anterior and inferior along the ventral stream.
    base_amplitude : float
        Amplitude every image evokes, A·m (20 nA·m, a typical evoked source).
    modulation : float
        Standard deviation of the embedding-driven amplitude for unit-variance
        embeddings, A·m.
    jitter : float
        Standard deviation of the trial-to-trial latency jitter, s.
    n_noise_sources : int
        Background dipoles carrying 1/f noise.
    %(random_state)s

    Returns
    -------
    MEGSimulation
    """
    if n_dims < 1 or not latencies or any(not 0.0 < lat < 1.0 for lat in latencies):
        raise ValueError(
            f"plant_sources needs n_dims >= 1 and latencies in (0, 1) s. Got n_dims={n_dims}, latencies={latencies}."
        )
    rng = np.random.default_rng(random_state)
    model = make_head_model()
    info = make_ctf275_info(sfreq)
    low, high = model.cortex.min(0), model.cortex.max(0)
    targets = []
    for k, _ in enumerate(latencies):
        # Walk from the occipital pole (posterior, mid-height) forward and down the ventral stream.
        y = low[1] + (0.01 + 0.03 * k) * (high[1] - low[1]) / 0.18
        z = model.centre[2] - 0.01 - 0.012 * k
        targets += [(-0.025 - 0.01 * k, y, z), (0.025 + 0.01 * k, y, z)]
    positions = model.cortex[_nearest(model.cortex, np.array(targets))]
    orientations = model.tangential(positions, rng)
    noise_positions = model.cortex[rng.choice(len(model.cortex), n_noise_sources, replace=False)]
    noise_orientations = model.tangential(noise_positions, rng)
    fields = model.leadfield(info, np.r_[positions, noise_positions], np.r_[orientations, noise_orientations])
    n_sources = len(positions)
    return MEGSimulation(
        info=info,
        head_model=model,
        positions=positions,
        orientations=orientations,
        latencies=np.repeat(np.asarray(latencies, float), 2),
        base=np.full(n_sources, base_amplitude),
        weights=rng.standard_normal((n_sources, n_dims)) * modulation / np.sqrt(n_dims),
        jitter=float(jitter),
        patterns=fields[:, :n_sources],
        noise_patterns=fields[:, n_sources:],
    )


def calibrate_noise(sim: MEGSimulation, signal_power: float, snr: float, sensor_noise: float) -> None:
    """Set ``sim.noise_scale`` and ``sim.sensor_noise_std`` so the noise power is ``signal_power / snr``.

    ``signal_power`` is the mean over channels and samples of the squared
    signal; the background sources' power follows from their patterns
    (independent unit-variance time courses).
    """
    if snr <= 0 or not 0.0 <= sensor_noise < 1.0:
        raise ValueError(f"Need snr > 0 and 0 <= sensor_noise < 1. Got snr={snr}, sensor_noise={sensor_noise}.")
    noise_power = signal_power / snr
    brain_power_unit = float((sim.noise_patterns**2).sum(1).mean())
    sim.noise_scale = float(np.sqrt((1.0 - sensor_noise) * noise_power / brain_power_unit))
    sim.sensor_noise_std = float(np.sqrt(sensor_noise * noise_power))
    sim.snr = float(snr)


def channel_units(info: "object") -> pd.DataFrame:
    """Per-channel metadata of MEG sensors: name, type, unit, head-frame position (m), coil type."""
    import mne

    chs = info["chs"]
    dev_head = info["dev_head_t"]["trans"] if info["dev_head_t"] is not None else np.eye(4)
    positions = mne.transforms.apply_trans(dev_head, np.array([ch["loc"][:3] for ch in chs]))
    types = info.get_channel_types()
    return pd.DataFrame(
        {
            "channel": info.ch_names,
            "type": types,
            "unit": ["T" if t in ("mag", "ref_meg") else "T/m" if t == "grad" else "" for t in types],
            "x": positions[:, 0],
            "y": positions[:, 1],
            "z": positions[:, 2],
            "coord_frame": "head",
            "coil_type": [int(ch["coil_type"]) for ch in chs],
        }
    )


@fill_doc
def simulate_meg_epochs(
    n_train: int = 120,
    n_test: int = 20,
    n_test_repeats: int = 4,
    n_dims: int = 8,
    *,
    embeddings: np.ndarray | None = None,
    sfreq: float = 200.0,
    tmin: float = -0.1,
    tmax: float = 0.5,
    latencies: tuple[float, ...] = (0.1, 0.17),
    jitter: float = 0.01,
    snr: float = 0.5,
    sensor_noise: float = 0.2,
    n_noise_sources: int = 100,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[Responses, np.ndarray, MEGSimulation]:
    """Simulated MEG epochs of a THINGS-MEG-like design, in memory.

    ``n_train`` images are shown once ("train" split, THINGS' exp trials) and
    ``n_test`` images ``n_test_repeats`` times each ("test" split), in a
    random order.

    Parameters
    ----------
    n_train, n_test, n_test_repeats : int
        Design sizes.
    n_dims : int
        Embedding dimension (ignored when ``embeddings`` is given).
    embeddings : array of shape (n_train + n_test, n_dims), optional
        Embedding of each stimulus (e.g. image features); default standard
        normal draws. Columns are standardized before driving the sources.
    sfreq : float
        Sampling frequency of the epochs, Hz.
    tmin, tmax : float
        Epoch window around image onset, s.
    latencies, jitter, n_noise_sources
        See :func:`plant_sources`.
    snr : float
        Signal-to-noise power ratio over channels and post-onset samples.
    sensor_noise : float
        Share of the noise power that is white sensor noise (the rest is 1/f brain noise).
    %(random_state)s

    Returns
    -------
    responses : Responses
        Data of shape (n_trials, 274, n_times) in tesla (float32); trials with
        ``stimulus_id`` (row of ``embeddings``), ``session``, ``run``,
        ``repeat``, ``split``; units from :func:`channel_units`.
    embeddings : array of shape (n_stimuli, n_dims)
        The embeddings the sources read (as given, not standardized).
    truth : MEGSimulation
        The planted sources, patterns and noise levels; ``trial_latencies`` set.
    """
    rng = np.random.default_rng(random_state)
    n_stimuli = n_train + n_test
    if min(n_train, n_test, n_test_repeats) < 1 or tmin >= 0.0 or tmax <= max(latencies):
        raise ValueError(
            "simulate_meg_epochs needs n_train, n_test, n_test_repeats >= 1 and tmin < 0 < max(latencies) < tmax. "
            f"Got n_train={n_train}, n_test={n_test}, n_test_repeats={n_test_repeats}, tmin={tmin}, tmax={tmax}."
        )
    if embeddings is None:
        embeddings = rng.standard_normal((n_stimuli, n_dims))
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] != n_stimuli:
        raise ValueError(
            f"The 'embeddings' parameter of simulate_meg_epochs must have shape ({n_stimuli}, n_dims). "
            f"Got {embeddings.shape}."
        )
    sim = plant_sources(
        embeddings.shape[1], sfreq=sfreq, latencies=latencies, jitter=jitter, n_noise_sources=n_noise_sources,
        random_state=rng,
    )
    standardized = (embeddings - embeddings.mean(0)) / np.maximum(embeddings.std(0), 1e-12)
    stimulus = np.r_[np.arange(n_train), np.repeat(np.arange(n_train, n_stimuli), n_test_repeats)]
    stimulus = stimulus[rng.permutation(len(stimulus))]
    times = np.arange(int(round(tmin * sfreq)), int(round(tmax * sfreq)) + 1) / sfreq
    trial_latencies = sim.latencies[None, :] + jitter * rng.standard_normal((len(stimulus), len(sim.latencies)))
    sources = sim.amplitudes(standardized[stimulus])[:, :, None] * sim.source_waves(times, trial_latencies)
    signal = sim.patterns @ sources  # (n_channels, n_sources) @ (n_trials, n_sources, n_times)
    calibrate_noise(sim, float((signal[:, :, times >= 0] ** 2).mean()), snr, sensor_noise)
    background = colored_noise(rng, (len(stimulus), n_noise_sources, len(times)), sfreq) * sim.noise_scale
    data = signal + sim.noise_patterns @ background
    data += sim.sensor_noise_std * rng.standard_normal(data.shape)
    sim.trial_latencies = trial_latencies
    test = stimulus >= n_train
    trials = pd.DataFrame(
        {
            "stimulus_id": stimulus,
            "session": 1,
            "run": 1,
            "repeat": pd.Series(stimulus).groupby(stimulus).cumcount().to_numpy(),
            "split": np.where(test, "test", "train"),
            "trial_type": np.where(test, "test", "exp"),
        }
    )
    responses = Responses(
        data=data.astype(np.float32),
        trials=trials,
        units=channel_units(sim.info),
        subject="sim01",
        modality="meg",
        space="sensor",
        times=times,
        info={"sfreq": float(sfreq), "dataset": "simulated-things-meg", "snr": float(snr)},
    )
    return responses, embeddings, sim
