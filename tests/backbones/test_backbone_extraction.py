"""Layer-wise extraction: hooks, pooling shapes, image modes, reduction fitted on train ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurodec.backbones import extract_features
from neurodec.data import Stimuli


def test_features_match_a_manual_forward(atto, stimuli):
    feats = extract_features(atto, stimuli, layers=["stages.1", "stages.3"], batch_size=4, verbose=False)
    x = atto.preprocess.batch([stimuli.get_image(i) for i in stimuli.ids])
    with torch.no_grad():
        maps = atto.model.forward_intermediates(x, indices=[1, 3], intermediates_only=True)
    for layer, fmap in zip(["stages.1", "stages.3"], maps):
        np.testing.assert_allclose(feats[layer].data, fmap.mean(dim=(2, 3)).numpy(), rtol=1e-4, atol=1e-5)
        assert list(feats[layer].stimulus_ids) == stimuli.ids
        assert feats[layer].meta["layer"] == layer
