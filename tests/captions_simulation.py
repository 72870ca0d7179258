"""A planted concept world for the voxel-caption tests: embeddings clustered around concept centres.

K concept centres are random unit vectors (nearly orthogonal in ``dim``
dimensions); every image embedding is a centre plus isotropic noise, and its
caption names its concept within a random template and context. A planted
voxel's weight vector is its concept's centre plus noise, so its true
preferred direction is known.
"""

from __future__ import annotations

import numpy as np

from neurodec.discovery.small_models import make_small_language_model

CONCEPTS = ("dog", "car", "tree", "boat")
TEMPLATES = ("a photo of a {c}", "a picture of a {c}", "an image of a {c}")
CONTEXTS = ("in the city", "near the water", "on a sunny day", "at night")


def concept_world(rng: np.random.Generator, *, dim: int = 64, n_per_concept: int = 50, image_noise: float = 0.5):
    """Return (centres (K, dim), embeddings (K * n_per_concept, dim), labels, captions)."""
    k = len(CONCEPTS)
    centres = rng.standard_normal((k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(k), n_per_concept)
    # Noise of total norm ~image_noise around each unit-norm centre.
    embeddings = centres[labels] + image_noise * rng.standard_normal((len(labels), dim)) / np.sqrt(dim)
    captions = [
        f"{TEMPLATES[rng.integers(len(TEMPLATES))].format(c=CONCEPTS[lab])} {CONTEXTS[rng.integers(len(CONTEXTS))]}"
        for lab in labels
    ]
    return centres, embeddings.astype(np.float32), labels, captions


def planted_voxels(rng: np.random.Generator, centres: np.ndarray, *, n_per_concept: int = 5, noise: float = 1.0):
    """Weights (dim, n_voxels) pointing at one concept each, with noise of total norm ~noise (unit-norm centres); and their concepts."""
    k, dim = centres.shape
    concept = np.repeat(np.arange(k), n_per_concept)
    weights = centres[concept] + noise * rng.standard_normal((len(concept), dim)) / np.sqrt(dim)
    return weights.T.astype(np.float32), concept


def tiny_language_model(captions, *, hidden: int = 64, n_layer: int = 2, seed: int = 0):
    """A randomly initialized 2-layer GPT-2 and a word-level tokenizer trained offline on ``captions``."""
    return make_small_language_model(captions, hidden=hidden, n_layer=n_layer, random_state=seed)
