"""Shared fixtures of the backbone tests: tiny stimuli and tiny random models."""

from __future__ import annotations

import numpy as np
import pytest

from neurodec.data import Stimuli


@pytest.fixture
def stimuli(rng: np.random.Generator) -> Stimuli:
    """Ten 32x32 RGB noise images with string ids."""
    images = rng.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8)
    return Stimuli.from_array(images, ids=[f"img{i:02d}" for i in range(10)], name="tiny")


@pytest.fixture(scope="session")
def atto():
    """timm's ConvNeXt-Atto, randomly initialized (the fastest real timm stage model)."""
    from neurodec.backbones import load

    return load("timm/convnext_atto", weights="random", device="cpu")
