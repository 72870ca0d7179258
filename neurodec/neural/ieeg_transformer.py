"""A spatiotemporal transformer for intracranial EEG (after BaRISTA, 2025).

Each channel's time series is cut into patches of ``patch_len`` samples; a
small convolutional temporal encoder, shared by all channels, turns every
patch into a token. Channel tokens are averaged into spatial tokens at the
chosen scale (channel, region or lobe; see :func:`~neurodec.neural.ieeg_tokens.spatial_layout`),
get a spatial embedding (Fourier features of their coordinates, or a learned
label embedding where coordinates are unknown) and a sinusoidal embedding of
their patch index, and a transformer encoder attends over all spatiotemporal
tokens at once. Masked tokens (for self-supervised pretraining, see
:mod:`~neurodec.neural.ieeg_pretraining`) have their content replaced by a
learned mask token before the embeddings are added.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .ieeg_tokens import Scale, SpatialLayout, spatial_layout

__all__ = ["IEEGTransformer", "fourier_features", "make_token_mask"]


def fourier_features(
    positions: torch.Tensor, n_frequencies: int, *, max_wavelength: float = 200.0, min_wavelength: float = 5.0
) -> torch.Tensor:
    """Sine and cosine features of 3-D positions at log-spaced spatial frequencies.

    Parameters
    ----------
    positions : tensor of shape (n_groups, 3)
        Coordinates in millimetres.
    n_frequencies : int
        Frequencies per axis, log-spaced between the two wavelengths.
    max_wavelength, min_wavelength : float
        Longest and shortest wavelength in millimetres: 200 mm spans a head,
        5 mm is about the spacing of neighbouring contacts.

    Returns
    -------
    tensor of shape (n_groups, 6 * n_frequencies)
    """
    wavelengths = torch.logspace(
        math.log10(max_wavelength), math.log10(min_wavelength), n_frequencies,
        dtype=positions.dtype, device=positions.device,
    )
    phases = 2 * math.pi * positions[:, :, None] / wavelengths  # (n_groups, 3, n_frequencies)
    return torch.cat([phases.sin(), phases.cos()], dim=-1).flatten(1)


def make_token_mask(
    n_samples: int,
    n_groups: int,
    n_patches: int,
    ratio: float,
    *,
    generator: torch.Generator | None = None,
    device: Any = "cpu",
) -> torch.Tensor:
    """Random spatiotemporal token mask with the same number of masked tokens in every sample.

    Parameters
    ----------
    n_samples, n_groups, n_patches : int
        Batch size, spatial tokens and time patches.
    ratio : float
        Fraction of the ``n_groups * n_patches`` tokens to mask, in (0, 1):
        ``round(ratio * n_tokens)`` tokens, at least one masked and one visible.
    generator : torch.Generator, optional
        Source of randomness (CPU generator), for reproducible masks.
    device : str or torch.device
        Device of the returned mask.

    Returns
    -------
    tensor of bool, shape (n_samples, n_groups, n_patches)
        True where a token is masked.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"The mask 'ratio' must lie strictly between 0 and 1. Got {ratio!r} instead.")
    n_tokens = n_groups * n_patches
    if n_tokens < 2:
        raise ValueError(f"Masking needs at least 2 tokens per sample (n_groups * n_patches). Got {n_tokens}.")
    n_masked = min(max(int(round(ratio * n_tokens)), 1), n_tokens - 1)
    scores = torch.rand(n_samples, n_tokens, generator=generator)
    ranks = scores.argsort(dim=1).argsort(dim=1)  # a uniformly random permutation per sample
    return (ranks < n_masked).view(n_samples, n_groups, n_patches).to(device)


class _SpatialEmbedding(nn.Module):
    """Fourier position embedding where coordinates are known, a learned label embedding elsewhere."""

    def __init__(self, layout: SpatialLayout, d_model: int, n_frequencies: int) -> None:
        super().__init__()
        known = layout.has_position
        self.n_frequencies = n_frequencies
        self.register_buffer("positions", torch.as_tensor(np.nan_to_num(layout.positions), dtype=torch.float32))
        self.register_buffer("known", torch.as_tensor(known))
        self.register_buffer("label_index", torch.as_tensor(np.maximum(np.cumsum(~known) - 1, 0)))
        self.project = nn.Linear(6 * n_frequencies, d_model)
        n_labels = int((~known).sum())
        self.labels = nn.Parameter(torch.randn(max(n_labels, 1), d_model) * 0.02)

    def forward(self) -> torch.Tensor:
        embedding = self.project(fourier_features(self.positions, self.n_frequencies))
        return torch.where(self.known[:, None], embedding, self.labels[self.label_index])


def _sinusoidal(n_positions: int, d_model: int, device: torch.device) -> torch.Tensor:
    """The transformer's sine/cosine position code, array of shape (n_positions, d_model)."""
    position = torch.arange(n_positions, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32, device=device) * (-math.log(1e4) / d_model))
    code = torch.zeros(n_positions, d_model, device=device)
    code[:, 0::2] = torch.sin(position * freq)
    code[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return code


class IEEGTransformer(nn.Module):
    """Spatiotemporal transformer encoder of iEEG epochs.

    Parameters
    ----------
    layout : SpatialLayout
        Channels and their spatial tokens (:func:`~neurodec.neural.ieeg_tokens.spatial_layout`).
    patch_len : int
        Samples per time patch (one token per spatial token per patch). The
        last ``n_times % patch_len`` samples of an epoch are not read.
    d_model : int
        Token width.
    n_heads, n_layers : int
        Attention heads and transformer layers.
    dim_feedforward : int, optional
        Width of the transformer's feed-forward layers (default ``4 * d_model``).
    dropout : float
        Dropout in the transformer.
    conv_channels, kernel_size : int
        Width and kernel of the two 1-D convolutions of the temporal encoder.
    n_frequencies : int
        Spatial frequencies per axis of the Fourier position embedding.

    Attributes
    ----------
    input_mean, input_std : tensor of shape (n_channels,)
        Per-channel statistics that standardize the input; set them from
        training data with :meth:`set_input_scale` (default 0 and 1).
    """

    def __init__(
        self,
        layout: SpatialLayout,
        *,
        patch_len: int,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
        conv_channels: int = 16,
        kernel_size: int = 7,
        n_frequencies: int = 8,
    ) -> None:
        super().__init__()
        for name, value in (("patch_len", patch_len), ("d_model", d_model), ("n_heads", n_heads),
                            ("n_layers", n_layers), ("conv_channels", conv_channels), ("kernel_size", kernel_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"The '{name}' parameter must be a positive integer. Got {value!r} instead.")
        if d_model % n_heads or d_model % 2:
            raise ValueError(f"'d_model' ({d_model}) must be even and divisible by 'n_heads' ({n_heads}).")
        self.layout = layout
        self.patch_len = int(patch_len)
        self.d_model = int(d_model)
        self.register_buffer("input_mean", torch.zeros(layout.n_channels))
        self.register_buffer("input_std", torch.ones(layout.n_channels))
        self.register_buffer("pooling", torch.as_tensor(layout.pooling_matrix()))
        self.temporal_encoder = nn.Sequential(
            nn.Conv1d(1, conv_channels, kernel_size, padding=kernel_size // 2),
            nn.GELU(),
            nn.Conv1d(conv_channels, conv_channels, kernel_size, padding=kernel_size // 2, stride=2),
            nn.GELU(),
            nn.Flatten(),
            nn.Linear(conv_channels * ((patch_len + 1) // 2), d_model),
        )
        self.spatial_embedding = _SpatialEmbedding(layout, d_model, n_frequencies)
        self.mask_token = nn.Parameter(torch.randn(d_model) * 0.02)
        # The fixed time code starts small (as ViT's learned position embeddings do) so that
        # the tokens' content, not their position, dominates the latents at initialization.
        self.time_scale = nn.Parameter(torch.tensor(0.1))
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward or 4 * d_model, dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    @classmethod
    def from_responses(
        cls,
        responses: Any,
        scale: Scale = "channel",
        *,
        patch_len: int,
        label_column: str | None = None,
        coordinate_columns: tuple[str, str, str] = ("x", "y", "z"),
        **kwargs: Any,
    ) -> "IEEGTransformer":
        """A transformer for the channels of ``responses`` (a time-resolved iEEG :class:`~neurodec.data.Responses`).

        ``scale``, ``label_column`` and ``coordinate_columns`` go to
        :func:`~neurodec.neural.ieeg_tokens.spatial_layout`, the rest to the
        constructor. The input scale is set from the responses' training split.
        """
        if getattr(responses, "data", None) is None or np.ndim(responses.data) != 3:
            raise ValueError("'responses' must be time-resolved Responses, data of shape (n_trials, n_units, n_times).")
        layout = spatial_layout(responses.units, scale, label_column=label_column,
                                coordinate_columns=coordinate_columns)
        model = cls(layout, patch_len=patch_len, **kwargs)
        train = (responses.trials["split"] == "train").to_numpy()
        model.set_input_scale(responses.data[train] if train.any() else responses.data)
        return model

    # ----------------------------------------------------------------- input
    def set_input_scale(self, data: Any) -> "IEEGTransformer":
        """Standardize each channel with the mean and standard deviation of ``data``.

        Parameters
        ----------
        data : array of shape (n_samples, n_channels, n_times)
            Training epochs (statistics over samples and time).
        """
        data = torch.as_tensor(np.asarray(data), dtype=torch.float64)
        self._check_input(data)
        std = data.std(dim=(0, 2))
        self.input_mean.copy_(data.mean(dim=(0, 2)))
        self.input_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))
        return self

    def n_patches(self, n_times: int) -> int:
        """Time patches (tokens per spatial token) of an epoch of ``n_times`` samples."""
        return n_times // self.patch_len

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.layout.n_channels:
            raise ValueError(
                f"The input must have shape (n_samples, {self.layout.n_channels} channels, n_times). "
                f"Got {tuple(x.shape)} instead."
            )
        if x.shape[2] < self.patch_len:
            raise ValueError(f"Epochs of {x.shape[2]} samples are shorter than one patch ({self.patch_len}).")

    # --------------------------------------------------------------- forward
    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """Content tokens (no embeddings yet), tensor of shape (n_samples, n_groups, n_patches, d_model).

        Parameters
        ----------
        x : tensor of shape (n_samples, n_channels, n_times)
        """
        self._check_input(x)
        n, c, _ = x.shape
        p = self.n_patches(x.shape[2])
        x = (x - self.input_mean[:, None]) / self.input_std[:, None]
        patches = x[:, :, : p * self.patch_len].reshape(n * c * p, 1, self.patch_len)
        tokens = self.temporal_encoder(patches).view(n, c, p, self.d_model)
        if self.layout.scale == "channel":
            return tokens
        return torch.einsum("gc,ncpd->ngpd", self.pooling.to(tokens.dtype), tokens)

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Contextual tokens from content tokens, masked ones replaced by the mask token.

        Parameters
        ----------
        tokens : tensor of shape (n_samples, n_groups, n_patches, d_model)
        mask : bool tensor of shape (n_samples, n_groups, n_patches), optional
            True where the content is hidden from the encoder.

        Returns
        -------
        tensor of shape (n_samples, n_groups, n_patches, d_model)
        """
        n, g, p, d = tokens.shape
        if mask is not None:
            if mask.shape != (n, g, p):
                raise ValueError(f"The 'mask' must have shape {(n, g, p)}. Got {tuple(mask.shape)} instead.")
            tokens = torch.where(mask[..., None], self.mask_token.to(tokens.dtype), tokens)
        time_code = self.time_scale * _sinusoidal(p, d, tokens.device)
        tokens = tokens + self.spatial_embedding()[None, :, None, :] + time_code[None, None]
        out = self.transformer(tokens.reshape(n, g * p, d))
        return self.norm(out).view(n, g, p, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Contextual spatiotemporal tokens of ``x``.

        Parameters
        ----------
        x : tensor of shape (n_samples, n_channels, n_times)
        mask : bool tensor of shape (n_samples, n_groups, n_patches), optional

        Returns
        -------
        tensor of shape (n_samples, n_groups, n_patches, d_model)
        """
        return self.encode(self.tokenize(x), mask)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """One vector per epoch: every spatial token's mean over time patches, concatenated.

        Parameters
        ----------
        x : tensor of shape (n_samples, n_channels, n_times)

        Returns
        -------
        tensor of shape (n_samples, n_groups * d_model)
        """
        return self.forward(x).mean(dim=2).flatten(1)
