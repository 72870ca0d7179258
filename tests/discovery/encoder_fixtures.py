"""Tiny backbones, stimuli and fitted encoding models shared by the encoder and in-silico tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from neurodec.backbones import extract_features, load
from neurodec.data import Responses, Stimuli
from neurodec.encoding import EncodingModel

SIZE = 32
#: Preprocessing at the input size: resize and crop are no-ops, so PIL and torch paths see the same pixels.
AT_SIZE = {"resize": SIZE, "crop": SIZE}
TINY_DINO = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, image_size=SIZE,
                 patch_size=8)
TINY_CLIP = dict(
    embed_dim=16, vision_cfg=dict(image_size=SIZE, layers=2, width=32, head_width=16, patch_size=8),
    text_cfg=dict(context_length=12, vocab_size=49408, width=16, heads=2, layers=1),
)
N_TRAIN, N_UNITS = 40, 6


def tiny_stimuli(n: int = 48, seed: int = 0) -> Stimuli:
    """``n`` random uint8 RGB images at the backbones' input size."""
    images = np.random.default_rng(seed).integers(0, 256, size=(n, SIZE, SIZE, 3), dtype=np.uint8)
    return Stimuli.from_array(images, ids=[f"s{i:02d}" for i in range(n)], name="tiny")


def as_tensor(stimuli: Stimuli) -> torch.Tensor:
    """The stimuli as float images of shape (n, 3, SIZE, SIZE) in [0, 1] (exactly the uint8 values / 255)."""
    return torch.stack([torch.from_numpy(stimuli.get_image(i)).permute(2, 0, 1) for i in stimuli.ids]).float() / 255


def resnet(**kwargs):
    return load("timm/resnet18", weights="random", device="cpu", preprocess=AT_SIZE, **kwargs)


def clip():
    """A tiny open_clip image tower; its own preprocessing (resize 32, crop 32) is a no-op at SIZE."""
    return load("open_clip/ViT-S-32", weights="random", device="cpu", **TINY_CLIP)


def dino():
    return load("transformers/facebook/dinov2-small", weights="random", device="cpu", preprocess=AT_SIZE, **TINY_DINO)


def fit_model(features: list, stimuli: Stimuli, *, seed: int = 0, constant_unit: int | None = None):
    """An EncodingModel fit on the first N_TRAIN stimuli to planted linear responses of ``features``.

    Returns (model, responses); units carry an ``roi:toy`` column ("A" for units 0-2, "B" for 3-5).
    """
    rng = np.random.default_rng(seed)
    X = np.hstack([f.data for f in features])
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    Y = X @ rng.normal(size=(X.shape[1], N_UNITS)) / np.sqrt(X.shape[1]) + 0.1 * rng.normal(size=(len(X), N_UNITS))
    if constant_unit is not None:
        Y[:, constant_unit] = 1.0
    ids = list(stimuli.ids)[:N_TRAIN]
    trials = pd.DataFrame({"stimulus_id": ids, "session": 0, "run": 0, "repeat": 0, "split": "train"})
    units = pd.DataFrame({"unit": range(N_UNITS), "roi:toy": pd.Categorical(["A"] * 3 + ["B"] * 3,
                                                                              categories=["A", "B", "C"])})
    responses = Responses(Y[:N_TRAIN].astype(np.float32), trials, units, "sub-01", space="toy")
    model = EncodingModel(alphas=[0.1, 10.0, 1000.0], cv=3, device="cpu", warn_alpha_edge=False, random_state=0)
    return model.fit(features, responses), responses


def features_of(backbone, stimuli, layer_pooling, **kwargs) -> list:
    """One feature space per (layer, pooling) pair, from extract_features."""
    spaces = []
    for layer, pooling in layer_pooling:
        spaces.append(extract_features(backbone, stimuli, layers=[layer], pooling=pooling, verbose=False,
                                       batch_size=16, **kwargs)[layer])
    return spaces
