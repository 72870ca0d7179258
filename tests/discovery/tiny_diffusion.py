"""A tiny randomly initialized Stable Diffusion pipeline (neurodec's small-model builder) and planted encoders."""

from __future__ import annotations

from pathlib import Path

import torch

from neurodec.discovery.diffusion import import_diffusers
from neurodec.discovery.small_models import make_small_diffusion_pipeline


def tiny_pipeline(folder: Path | None = None, *, scheduler: str = "ddim", seed: int = 0, sample_size: int = 8):
    """A (8, 16)-channel pipeline making images of 2 * sample_size pixels; "euler" swaps in an unsupported sampler."""
    pipe = make_small_diffusion_pipeline(
        image_size=2 * sample_size, scheduler="ddim" if scheduler == "euler" else scheduler, random_state=seed
    )
    if scheduler == "euler":
        pipe.scheduler = import_diffusers().EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    return pipe


class ColourEncoder(torch.nn.Module):
    """Planted encoder: units read out the mean colour of the image with fixed weights, (N, 3, H, W) -> (N, n_units)."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weights", weights)  # (3, n_units)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3)) @ self.weights
