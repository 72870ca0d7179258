"""A CTF-275 MEG sensor array around mne's fsaverage head, for simulations that run offline.

Everything here comes from files that ship inside the ``mne`` package (no
download):

- sensors: :func:`mne.channels.read_meg_canonical_info` ("ctf275"), mne's
  canonical definitions of the 274 axial gradiometers of a CTF-275 system
  (coil type 5001, positions and orientations in the device frame), renamed
  with THINGS-MEG's serial suffix (``MLC11-1609``);
- head: fsaverage's inner-skull surface (``mne/data/fsaverage/
  fsaverage-inner_skull-bem.fif``, 10,242 vertices) moved into the head frame
  with ``fsaverage-trans.fif``;
- placement: the device-to-head transform is the translation that puts the
  centre of the sphere fitted to the sensor array on the centre of the sphere
  fitted to the inner skull, which leaves the sensors 3.0 to 4.8 cm from the
  inner skull, as in a CTF helmet;
- conductor: a sphere model (:func:`mne.make_sphere_model`) centred on the
  inner skull's sphere. For MEG a spherically symmetric conductor's field does
  not depend on the layer radii, so only the centre matters (Sarvas 1987);
  mne's BEM needs a FreeSurfer subject, which does not ship offline;
- sources: candidate dipole positions on a cortex-like surface, the inner
  skull shrunk by ``depth`` (default 12 mm) toward the sphere's centre.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["HeadModel", "make_ctf275_info", "make_head_model"]

#: THINGS-MEG's channel names end in the CTF system's serial number.
THINGS_SERIAL = "1609"


def _fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through ``points`` of shape (n, 3): (centre, radius)."""
    design = np.c_[2 * points, np.ones(len(points))]
    solution = np.linalg.lstsq(design, (points**2).sum(1), rcond=None)[0]
    centre = solution[:3]
    return centre, float(np.sqrt(solution[3] + centre @ centre))


def make_ctf275_info(sfreq: float = 1200.0, *, serial: str = THINGS_SERIAL) -> "object":
    """``mne.Info`` of the CTF-275's 274 axial gradiometers, placed around the fsaverage head.

    Parameters
    ----------
    sfreq : float
        Sampling frequency in Hz.
    serial : str
        Suffix of the channel names (``MLC11-<serial>``); THINGS-MEG's is "1609".

    Returns
    -------
    mne.Info
        Channels of type "mag" with CTF axial-gradiometer coils (coil type 5001)
        and the device-to-head transform described in the module docstring.
    """
    import mne

    info = mne.channels.read_meg_canonical_info("ctf275", verbose=False)
    mne.rename_channels(info, {name: f"{name.split('-')[0]}-{serial}" for name in info.ch_names})
    positions = np.array([ch["loc"][:3] for ch in info["chs"]])
    model = _inner_skull()
    sensor_centre, _ = _fit_sphere(positions)
    info["dev_head_t"] = mne.transforms.Transform("meg", "head", mne.transforms.translation(*(model[1] - sensor_centre)))
    with info._unlock():
        info["sfreq"] = float(sfreq)
        info["lowpass"] = float(sfreq) / 2.0
    return info


@lru_cache(maxsize=1)
def _inner_skull() -> tuple[np.ndarray, np.ndarray, float]:
    """fsaverage's inner skull in the head frame: (vertices (n, 3) in m, sphere centre, radius)."""
    import mne

    folder = Path(mne.__file__).parent / "data" / "fsaverage"
    surface = mne.read_bem_surfaces(folder / "fsaverage-inner_skull-bem.fif", verbose=False)[0]
    head_to_mri = mne.read_trans(folder / "fsaverage-trans.fif")
    vertices = mne.transforms.apply_trans(mne.transforms.invert_transform(head_to_mri), surface["rr"])
    centre, radius = _fit_sphere(vertices)
    return vertices, centre, radius


@dataclasses.dataclass(frozen=True)
class HeadModel:
    """A sphere conductor centred on fsaverage's inner skull, with cortex-like source positions.

    Attributes
    ----------
    centre : array of shape (3,)
        Centre of the conductor, head frame, metres.
    radius : float
        Radius of the sphere fitted to the inner skull, metres.
    cortex : array of shape (n_vertices, 3)
        Candidate source positions (the inner skull shrunk by ``depth``), head frame, metres.
    depth : float
        How far inside the inner skull the sources lie, metres.
    """

    centre: np.ndarray
    radius: float
    cortex: np.ndarray
    depth: float

    def tangential(self, positions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random unit orientations of shape (n, 3) with no radial component.

        A radial dipole produces no field outside a spherical conductor, so
        cortical dipoles of a sphere model are drawn tangential (a real
        cortex's folding gives every orientation; only the tangential part
        reaches MEG sensors).
        """
        radial = positions - self.centre
        radial /= np.linalg.norm(radial, axis=1, keepdims=True)
        raw = rng.standard_normal(positions.shape)
        raw -= (raw * radial).sum(1, keepdims=True) * radial
        return raw / np.linalg.norm(raw, axis=1, keepdims=True)

    def leadfield(self, info: "object", positions: np.ndarray, orientations: np.ndarray) -> np.ndarray:
        """Sensor field of unit dipoles, array of shape (n_channels, n_dipoles), in T per A·m.

        Parameters
        ----------
        info : mne.Info
            The sensors (e.g. :func:`make_ctf275_info`).
        positions, orientations : arrays of shape (n_dipoles, 3)
            Dipole positions (head frame, metres) and unit orientations.
        """
        import mne

        sphere = mne.make_sphere_model(r0=tuple(self.centre), head_radius=None, verbose=False)
        source_space = mne.setup_volume_source_space(
            pos={"rr": np.asarray(positions, float), "nn": np.asarray(orientations, float)}, verbose=False
        )
        forward = mne.make_forward_solution(
            info, trans=None, src=source_space, bem=sphere, meg=True, eeg=False, mindist=0.0, n_jobs=1, verbose=False
        )
        if forward["nsource"] != len(positions):
            raise RuntimeError(f"mne kept {forward['nsource']} of {len(positions)} dipoles of the forward model.")
        gain = forward["sol"]["data"].reshape(len(info.ch_names), len(positions), 3)
        return np.einsum("cdk,dk->cd", gain, orientations)


def make_head_model(depth: float = 0.012) -> HeadModel:
    """The fsaverage sphere head model with sources ``depth`` metres inside the inner skull.

    Parameters
    ----------
    depth : float
        Distance from the inner skull to the cortex-like source surface, metres
        (the cortex lies 5-20 mm inside the inner skull).

    Returns
    -------
    HeadModel
    """
    if not 0.0 <= depth < 0.05:
        raise ValueError(f"The 'depth' parameter of make_head_model must be in [0, 0.05) metres. Got {depth!r}.")
    vertices, centre, radius = _inner_skull()
    direction = vertices - centre
    distance = np.linalg.norm(direction, axis=1, keepdims=True)
    cortex = centre + direction * (1.0 - depth / distance)
    return HeadModel(centre=centre, radius=radius, cortex=cortex, depth=depth)
