"""The MEG image decoder of Benchetrit, Banville & King (2023), after Défossez et al. (2023).

MEG epochs (n_channels x n_times) -> spatial attention over the 2-D sensor
layout (Fourier features of sensor positions -> a softmax over sensors for
each of ``n_spatial`` virtual channels, with dropout of a random disc of
sensors while training) -> 1x1 convolution -> one linear layer per subject
-> dilated residual convolution blocks with GLU -> temporal aggregation ->
two heads: one for the contrastive (CLIP) loss, one for the MSE loss.

This module holds the network; :mod:`neurodec.neural.meg_loss` the loss and
:mod:`neurodec.neural.meg_evaluation` training and evaluation against the
linear ridge decoder.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["MEGDecoder", "sensor_layout_2d"]


def sensor_layout_2d(positions: Any) -> np.ndarray:
    """2-D sensor layout in [0, 1]^2 from 2-D or 3-D sensor positions.

    3-D positions are centred on their mean and projected azimuthally
    (equidistant, about the vertical axis): the projection MNE uses for
    topographic maps, which keeps neighbouring sensors neighbours. Both axes
    are then scaled together into [0.1, 0.9] (the margin keeps the Fourier
    features of the attention away from their period).

    Parameters
    ----------
    positions : array of shape (n_channels, 2) or (n_channels, 3)

    Returns
    -------
    array of shape (n_channels, 2)
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] not in (2, 3) or len(pos) < 2 or not np.all(np.isfinite(pos)):
        raise ValueError(
            "The 'positions' parameter must be a finite array of shape (n_channels, 2) or (n_channels, 3) with "
            f"at least 2 channels. Got shape {pos.shape}" + ("" if pos.ndim != 2 else " with non-finite values.")
        )
    if pos.shape[1] == 3:
        centred = pos - pos.mean(axis=0)
        radius = np.linalg.norm(centred, axis=1)
        polar = np.arccos(np.clip(centred[:, 2] / np.maximum(radius, 1e-12), -1.0, 1.0))  # angle from the vertex
        azimuth = np.arctan2(centred[:, 1], centred[:, 0])
        pos = np.stack([polar * np.cos(azimuth), polar * np.sin(azimuth)], axis=1)
    span = float(np.max(pos.max(axis=0) - pos.min(axis=0)))
    if span == 0:
        raise ValueError("The 'positions' parameter puts every sensor at the same place.")
    return 0.1 + 0.8 * (pos - pos.min(axis=0)) / span


class _SpatialAttention(nn.Module):
    """Softmax attention over sensors, its logits a learned function of Fourier features of positions."""

    def __init__(self, layout: np.ndarray, n_out: int, n_freqs: int, dropout_radius: float) -> None:
        super().__init__()
        freqs = torch.arange(n_freqs, dtype=torch.float32)
        fx, fy = torch.meshgrid(freqs, freqs, indexing="ij")
        xy = torch.as_tensor(layout, dtype=torch.float32)
        # Period 1.2 > the layout's [0.1, 0.9] range, so that no two sensors share a phase.
        phase = 2 * math.pi / 1.2 * (xy[:, :1] * fx.reshape(1, -1) + xy[:, 1:] * fy.reshape(1, -1))
        self.register_buffer("layout", xy)
        self.register_buffer("features", torch.cat([torch.cos(phase), torch.sin(phase)], dim=1))
        n_features = self.features.shape[1]
        self.heads = nn.Parameter(torch.randn(n_out, n_features) / math.sqrt(n_features))
        self.dropout_radius = dropout_radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.heads @ self.features.T  # (n_out, n_channels)
        if self.training and self.dropout_radius > 0:
            # Drop every sensor within a disc around a random point: the decoder must not lean on one region.
            centre = torch.rand(2, device=x.device) * 0.8 + 0.1
            dropped = (self.layout - centre).norm(dim=1) <= self.dropout_radius
            if not bool(dropped.all()):
                logits = logits.masked_fill(dropped, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        return torch.einsum("oc,bct->bot", weights, x)


class _SubjectLayer(nn.Module):
    """One (n_channels x n_channels) linear map per subject, initialized at the identity."""

    def __init__(self, n_channels: int, n_subjects: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.eye(n_channels).repeat(n_subjects, 1, 1))

    def forward(self, x: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        # A one-hot product rather than ``weights[subject]``: the backward of that indexing accumulates the
        # trials' gradients in a thread-dependent order on CPU, so identical-seed runs drifted apart; the
        # product's backward is a matrix product, reproducible run to run.
        n_subjects, n_channels, _ = self.weights.shape
        onehot = nn.functional.one_hot(subject, n_subjects).to(x.dtype)
        per_trial = (onehot @ self.weights.reshape(n_subjects, -1)).reshape(len(x), n_channels, n_channels)
        return torch.einsum("bct,bcd->bdt", x, per_trial)


class _ConvBlock(nn.Module):
    """Two residual dilated convolutions (batch norm, GELU) and a GLU convolution."""

    def __init__(self, n_in: int, n_hidden: int, index: int, dropout: float) -> None:
        super().__init__()
        layers = []
        for j, dilation in enumerate((2 ** ((2 * index) % 5), 2 ** ((2 * index + 1) % 5))):
            layers.append(nn.Sequential(
                nn.Conv1d(n_in if j == 0 else n_hidden, n_hidden, 3, dilation=dilation, padding=dilation),
                nn.BatchNorm1d(n_hidden), nn.GELU(), nn.Dropout(dropout),
            ))
        self.convs = nn.ModuleList(layers)
        self.residual = [n_in == n_hidden, True]
        self.glu = nn.Sequential(nn.Conv1d(n_hidden, 2 * n_hidden, 3, padding=1), nn.GLU(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, residual in zip(self.convs, self.residual):
            x = x + conv(x) if residual else conv(x)
        return self.glu(x)


class MEGDecoder(nn.Module):
    """MEG epochs -> image embeddings (Benchetrit, Banville & King 2023).

    Parameters
    ----------
    positions : array of shape (n_channels, 2) or (n_channels, 3)
        Sensor positions, mapped to a 2-D layout by :func:`sensor_layout_2d`.
    n_times : int
        Samples per epoch (the affine temporal aggregation has one weight per sample).
    n_outputs : int
        Dimensions of the image embedding.
    n_subjects : int
        Subjects (one linear layer each).
    n_spatial : int
        Virtual channels out of the spatial attention (270 in the paper).
    n_freqs : int
        Fourier frequencies per axis of the attention (32 in the paper).
    spatial_dropout : float
        Radius of the dropped disc of sensors, in layout units (0.2 in the paper).
    n_hidden : int
        Channels of the convolution blocks (320 in the paper).
    n_blocks : int
        Convolution blocks (5 in the paper).
    n_aggregate : int
        Channels after the last 1x1 convolution, before temporal aggregation (2048 in the paper).
    aggregation : {"affine", "mean"}
        Temporal aggregation: a learned weighted sum over time (the paper's
        choice) or the mean over time (invariant to latency shifts).
    dropout : float
        Dropout after each convolution.
    temperature : float or None
        Fixed temperature of the contrastive loss; None learns it (CLIP's
        ``logit_scale``, initialized at 1 / 0.07).

    Attributes
    ----------
    logit_scale : torch.nn.Parameter or buffer, shape ()
        log(1 / temperature), read by :func:`neurodec.neural.clip_mse_loss`.

    Notes
    -----
    ``forward(x, subject=None)`` takes ``x`` of shape (batch, n_channels,
    n_times) and ``subject`` of shape (batch,) (subject indices; None is
    subject 0) and returns a tuple ``(clip, mse)`` of arrays of shape
    (batch, n_outputs). Under data-parallel training convert the batch norms
    with ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` for results that
    do not depend on the number of GPUs (the loss already gathers negatives
    across them).

    References
    ----------
    Benchetrit, Banville & King, "Brain decoding: toward real-time
    reconstruction of visual perception", ICLR 2024 (arXiv 2310.19812).
    Défossez et al., "Decoding speech perception from non-invasive brain
    recordings", Nature Machine Intelligence 2023.
    """

    def __init__(
        self,
        positions: Any,
        n_times: int,
        n_outputs: int,
        *,
        n_subjects: int = 1,
        n_spatial: int = 270,
        n_freqs: int = 32,
        spatial_dropout: float = 0.2,
        n_hidden: int = 320,
        n_blocks: int = 5,
        n_aggregate: int = 2048,
        aggregation: str = "affine",
        dropout: float = 0.0,
        temperature: float | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("n_times", n_times), ("n_outputs", n_outputs), ("n_subjects", n_subjects),
                            ("n_spatial", n_spatial), ("n_freqs", n_freqs), ("n_hidden", n_hidden),
                            ("n_blocks", n_blocks), ("n_aggregate", n_aggregate)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"The {name!r} parameter of MEGDecoder must be a positive integer. Got {value!r}.")
        if aggregation not in ("affine", "mean"):
            raise ValueError(f"The 'aggregation' parameter of MEGDecoder must be 'affine' or 'mean'. Got {aggregation!r}.")
        if temperature is not None and not temperature > 0:
            raise ValueError(f"The 'temperature' parameter of MEGDecoder must be positive or None. Got {temperature!r}.")
        layout = sensor_layout_2d(positions)
        self.n_channels, self.n_times, self.n_outputs = len(layout), int(n_times), int(n_outputs)
        self.spatial = _SpatialAttention(layout, n_spatial, n_freqs, spatial_dropout)
        self.merge = nn.Conv1d(n_spatial, n_spatial, 1)
        self.subject_layer = _SubjectLayer(n_spatial, n_subjects)
        self.blocks = nn.Sequential(*(_ConvBlock(n_spatial if i == 0 else n_hidden, n_hidden, i, dropout)
                                      for i in range(n_blocks)))
        self.project = nn.Sequential(nn.Conv1d(n_hidden, n_aggregate, 1), nn.GELU())
        self.aggregation = aggregation
        self.time_weights = nn.Linear(n_times, 1) if aggregation == "affine" else None
        self.clip_head = nn.Sequential(nn.LayerNorm(n_aggregate), nn.GELU(), nn.Linear(n_aggregate, n_outputs))
        self.mse_head = nn.Sequential(nn.LayerNorm(n_aggregate), nn.GELU(), nn.Linear(n_aggregate, n_outputs))
        scale = torch.tensor(math.log(1 / 0.07) if temperature is None else math.log(1 / temperature))
        if temperature is None:
            self.logit_scale = nn.Parameter(scale)
        else:
            self.register_buffer("logit_scale", scale)

    def forward(self, x: torch.Tensor, subject: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 3 or x.shape[1] != self.n_channels or x.shape[2] != self.n_times:
            raise ValueError(f"MEGDecoder expects input of shape (batch, {self.n_channels}, {self.n_times}). "
                             f"Got {tuple(x.shape)}.")
        if subject is None:
            subject = torch.zeros(len(x), dtype=torch.long, device=x.device)
        h = self.subject_layer(self.merge(self.spatial(x)), subject)
        h = self.project(self.blocks(h))
        h = self.time_weights(h).squeeze(-1) if self.time_weights is not None else h.mean(dim=-1)
        return self.clip_head(h), self.mse_head(h)
