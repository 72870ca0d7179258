"""Spatial tokens for iEEG: which channels form a token, and where that token sits.

A spatiotemporal iEEG transformer (BaRISTA, 2025) reads one token per spatial
unit per time patch. The spatial unit is chosen by ``scale``: every channel
("channel"), every labelled region ("region") or every lobe ("lobe"); channel
tokens are averaged within a region or lobe. Each spatial token gets an
embedding of its position: a Fourier embedding of its coordinates (MNI or
ACPC x, y, z in millimetres, the mean over its channels) where they are known,
else a learned embedding of its label, with a warning, since a label embedding
carries no geometry and does not transfer to another implant.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["SCALES", "SpatialLayout", "spatial_layout"]

Scale = Literal["channel", "region", "lobe"]
#: The spatial scales a token can have.
SCALES: tuple[str, ...] = ("channel", "region", "lobe")

_NAME_COLUMNS = ("name", "channel", "ch_name")
_MISSING_LABELS = {"", "n/a", "nan", "none", "unknown"}


@dataclasses.dataclass(frozen=True)
class SpatialLayout:
    """Spatial tokens of one implant at one scale.

    Attributes
    ----------
    scale : {"channel", "region", "lobe"}
        What one spatial token stands for.
    channel_names : tuple of str
        The channels, in the order of the data's channel axis (n_channels).
    groups : tuple of str
        Name of every spatial token (n_groups): channel names at the channel
        scale, region or lobe labels otherwise (in order of first appearance).
    assignment : array of shape (n_channels,)
        Token (index into ``groups``) of every channel.
    positions : array of shape (n_groups, 3)
        Mean coordinates of every token's channels (NaN where none is known).
    """

    scale: str
    channel_names: tuple[str, ...]
    groups: tuple[str, ...]
    assignment: np.ndarray
    positions: np.ndarray

    @property
    def n_channels(self) -> int:
        """Channels of the data (length of its channel axis)."""
        return len(self.channel_names)

    @property
    def n_groups(self) -> int:
        """Spatial tokens per time patch."""
        return len(self.groups)

    @property
    def has_position(self) -> np.ndarray:
        """Boolean array of shape (n_groups,): True where the token's coordinates are known."""
        return np.isfinite(self.positions).all(axis=1)

    def pooling_matrix(self) -> np.ndarray:
        """Array of shape (n_groups, n_channels) averaging each token's channels (rows sum to 1)."""
        matrix = np.zeros((self.n_groups, self.n_channels), dtype=np.float32)
        matrix[self.assignment, np.arange(self.n_channels)] = 1.0
        return matrix / matrix.sum(axis=1, keepdims=True)


def spatial_layout(
    units: pd.DataFrame,
    scale: Scale = "channel",
    *,
    label_column: str | None = None,
    coordinate_columns: Sequence[str] = ("x", "y", "z"),
) -> SpatialLayout:
    """Group the channels of ``units`` into spatial tokens at ``scale``.

    Parameters
    ----------
    units : pandas.DataFrame of n_channels rows
        Channel metadata, e.g. ``Responses.units`` of an iEEG recording: a
        channel name column ("name", "channel" or "ch_name"), coordinates and,
        for the region and lobe scales, a label column.
    scale : {"channel", "region", "lobe"}
        One token per channel, per region or per lobe.
    label_column : str, optional
        Column holding each channel's region or lobe label. Default: the column
        named like ``scale`` ("region" or "lobe"). Ignored at the channel scale.
    coordinate_columns : sequence of three str
        Columns holding the x, y, z coordinates (millimetres, in the frame of
        the recording, e.g. MNI). NaN marks an unknown position.

    Returns
    -------
    SpatialLayout

    Warns
    -----
    UserWarning
        When some tokens have no coordinates: they fall back to label embeddings.
    """
    if not isinstance(units, pd.DataFrame) or len(units) == 0:
        raise ValueError(f"The 'units' parameter must be a non-empty pandas DataFrame. Got {type(units).__name__}.")
    if scale not in SCALES:
        raise ValueError(f"The 'scale' parameter must be one of {SCALES}. Got {scale!r} instead.")
    names = _channel_names(units)
    coords = _coordinates(units, coordinate_columns)
    if scale == "channel":
        groups, assignment = names, np.arange(len(names))
    else:
        column = label_column or scale
        if column not in units.columns:
            raise ValueError(
                f"Spatial tokens at the {scale!r} scale need a label column; 'units' has no column {column!r} "
                f"(columns: {list(units.columns)}). Pass label_column= or use scale='channel'."
            )
        labels = units[column].astype("string").fillna("").str.strip().to_numpy(dtype=object)
        unlabelled = [n for n, lab in zip(names, labels) if str(lab).lower() in _MISSING_LABELS]
        if unlabelled:
            raise ValueError(
                f"Channel(s) {unlabelled[:10]} have no label in column {column!r}; drop them "
                f"(Responses.select_units) or label them before building {scale}-level tokens."
            )
        groups_array, first, assignment = np.unique(labels, return_index=True, return_inverse=True)
        order = np.argsort(first)  # tokens in order of first appearance, not alphabetical
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        groups, assignment = tuple(str(g) for g in groups_array[order]), rank[assignment.ravel()]
    positions = np.full((len(groups), 3), np.nan)
    for g in range(len(groups)):
        members = coords[assignment == g]
        known = members[np.isfinite(members).all(axis=1)]
        if len(known):
            positions[g] = known.mean(axis=0)
    layout = SpatialLayout(scale, tuple(names), tuple(groups), np.asarray(assignment, dtype=np.int64), positions)
    missing = [g for g, ok in zip(layout.groups, layout.has_position) if not ok]
    if missing:
        warnings.warn(
            f"{len(missing)} of {layout.n_groups} {scale} token(s) have no coordinates ({missing[:10]}); "
            "they use learned label embeddings instead of position embeddings, which do not transfer to "
            "other implants. Provide coordinates in the units' columns "
            f"{list(coordinate_columns)} to silence this.",
            UserWarning,
            stacklevel=2,
        )
    return layout


def _channel_names(units: pd.DataFrame) -> tuple[str, ...]:
    for column in _NAME_COLUMNS:
        if column in units.columns:
            names = tuple(str(n) for n in units[column])
            if len(set(names)) != len(names):
                raise ValueError(f"The channel names in column {column!r} of 'units' are not unique.")
            return names
    raise ValueError(f"'units' needs a channel name column, one of {_NAME_COLUMNS}. Got {list(units.columns)}.")


def _coordinates(units: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    columns = list(columns)
    if len(columns) != 3:
        raise ValueError(f"The 'coordinate_columns' parameter must name 3 columns (x, y, z). Got {columns}.")
    if not all(c in units.columns for c in columns):
        return np.full((len(units), 3), np.nan)  # no coordinates at all: every token falls back (and warns)
    return units[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
