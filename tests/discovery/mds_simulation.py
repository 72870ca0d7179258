"""A simulated population with planted functional types, for the MDS tests.

Every type's units are a linear filter (the type's Gabor template plus small
unit-specific noise in the weights) followed by a softplus and a unit-specific
gain: a small differentiable model whose true cell types are known.
"""

from __future__ import annotations

import numpy as np
import torch


def gabor(size: int, cx: float, cy: float, theta: float, *, freq: float = 0.2, sigma: float = 2.5) -> np.ndarray:
    """A ``size x size`` Gabor patch centred at (cx, cy), oriented at ``theta``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    along = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    envelope = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return envelope * np.cos(2 * np.pi * freq * along)


class PlantedPopulation(torch.nn.Module):
    """Units of ``len(templates)`` types: ``gain * softplus(<w_unit, image>)``, w_unit near its type's template."""

    def __init__(self, templates: np.ndarray, n_per_type: int, rng: np.random.Generator, *,
                 weight_noise: float = 0.1) -> None:
        super().__init__()
        n_types = len(templates)
        self.types = np.repeat(np.arange(n_types), n_per_type)
        flat = templates.reshape(n_types, -1)
        flat = flat / np.linalg.norm(flat, axis=1, keepdims=True)
        weights = flat[self.types] + weight_noise * rng.standard_normal((self.types.size, flat.shape[1])) / np.sqrt(
            flat.shape[1]
        )
        self.weight = torch.nn.Parameter(torch.tensor(weights, dtype=torch.float32))
        self.register_buffer("gain", torch.tensor(rng.uniform(0.5, 2.0, self.types.size), dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.gain * torch.nn.functional.softplus(images.flatten(1) @ self.weight.T)


def planted_population(rng: np.random.Generator, *, channels: int = 1, size: int = 16,
                       n_per_type: int = 20) -> tuple[np.ndarray, PlantedPopulation]:
    """Four types, each tuned to a Gabor at its own position and orientation; returns (templates, model)."""
    c, d = size / 2 - 0.5, size / 5
    patches = [gabor(size, c - d, c - d, 0.0), gabor(size, c + d, c - d, np.pi / 4),
               gabor(size, c - d, c + d, np.pi / 2), gabor(size, c + d, c + d, 3 * np.pi / 4)]
    # Colour images: each type's template lives in its own mix of the channels.
    mix = np.abs(rng.standard_normal((len(patches), channels))) + 0.5
    templates = np.stack([m[:, None, None] * p[None] for m, p in zip(mix, patches)])
    return templates, PlantedPopulation(templates, n_per_type, rng)
