"""Most discriminative stimuli: recovery of planted cell types, invariants, errors."""

import math

import numpy as np
import pytest
import torch

from mds_simulation import planted_population
from neurodec.discovery import MDSResult, most_discriminative_stimuli

FAST = dict(n_steps=50, max_iter=10, n_noise_images=128, device="cpu")


def _template_correlations(result: MDSResult, templates: np.ndarray) -> np.ndarray:
    """Correlation of every recovered stimulus (rows) with every planted template (columns)."""
    k = result.n_clusters
    flat = np.concatenate([result.stimuli.reshape(k, -1), templates.reshape(len(templates), -1)])
    return np.corrcoef(flat)[:k, k:]


@pytest.mark.parametrize(("channels", "size", "seed"), [(1, 16, 0), (1, 16, 1), (1, 16, 2), (3, 12, 0), (3, 12, 3)])
def test_recovers_planted_types_from_random_starts(channels, size, seed):
    templates, model = planted_population(np.random.default_rng(seed), channels=channels, size=size)
    result = most_discriminative_stimuli(model, (channels, size, size), 4, n_init=3, random_state=seed, **FAST)
    assert result.adjusted_rand_index(model.types) >= 0.9
    assert result.converged and result.n_clusters == 4
    assert result.stimuli.shape == (4, channels, size, size)
    assert result.objective.shape == (result.n_iter,)
    assert result.objective[-1] == pytest.approx(math.log(4), abs=0.02)  # the contrast's ceiling: fully separated
    # Every cluster's stimulus looks most like the template of the type its units belong to.
    majority = [np.bincount(model.types[result.labels == k]).argmax() for k in range(4)]
    np.testing.assert_array_equal(_template_correlations(result, templates).argmax(axis=1), majority)


def test_single_random_start_recovers_types_and_more_starts_never_do_worse():
    templates, model = planted_population(np.random.default_rng(1))
    one = most_discriminative_stimuli(model, (1, 16, 16), 4, random_state=1, **FAST)
    assert one.adjusted_rand_index(model.types) >= 0.9
    # n_init keeps the best final objective; its first run is the single run above.
    three = most_discriminative_stimuli(model, (1, 16, 16), 4, n_init=3, random_state=1, **FAST)
    assert three.objective[-1] >= one.objective[-1] - 1e-6


def test_same_random_state_same_result_and_model_left_as_found():
    _, model = planted_population(np.random.default_rng(2))
    model.train()
    first = most_discriminative_stimuli(model, (1, 16, 16), 5, random_state=7, **FAST)
    second = most_discriminative_stimuli(model, (1, 16, 16), 5, random_state=7, **FAST)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.stimuli, second.stimuli)
    np.testing.assert_array_equal(first.objective, second.objective)
    assert model.training  # the training flag is restored
    assert model.weight.grad is None  # only the stimuli get gradients


def test_empty_clusters_are_dropped_and_labels_stay_consistent():
    templates, model = planted_population(np.random.default_rng(0))
    # A cluster given no unit at the start is dropped before the first stimulus step.
    init = np.where(model.types == 3, 5, model.types)  # labels 0, 1, 2, 5 of n_clusters=6: 3 and 4 empty
    result = most_discriminative_stimuli(model, (1, 16, 16), 6, init=init, random_state=0, **FAST)
    assert result.n_clusters == 4 and result.adjusted_rand_index(model.types) == 1.0
    # Starting with twice as many clusters as types, clusters that lose all their units are dropped:
    # the kept labels are 0..K-1, one stimulus each, and at convergence every unit's own stimulus drives it most.
    result = most_discriminative_stimuli(model, (1, 16, 16), 8, random_state=0, **FAST)
    assert result.converged and 4 <= result.n_clusters < 8
    np.testing.assert_array_equal(np.unique(result.labels), np.arange(result.n_clusters))
    with torch.no_grad():
        responses = model(torch.as_tensor(result.stimuli)).numpy()
    np.testing.assert_array_equal(responses.argmax(axis=0), result.labels)


def test_stimuli_respect_norm_pixel_range_and_smoothing():
    _, model = planted_population(np.random.default_rng(0), channels=3, size=12)
    result = most_discriminative_stimuli(model, (3, 12, 12), 4, norm=6.0, pixel_range=(-0.5, 0.5), smooth_sigma=1.0,
                                         init="kmeans", random_state=0, **FAST)
    assert result.stimuli.min() >= -0.5 and result.stimuli.max() <= 0.5
    norms = np.linalg.norm(result.stimuli.reshape(result.n_clusters, -1), axis=1)
    assert np.all(norms <= 6.0 + 1e-4)
    assert result.adjusted_rand_index(model.types) >= 0.9


def test_kmeans_init_and_given_labels():
    _, model = planted_population(np.random.default_rng(3))
    result = most_discriminative_stimuli(model, (1, 16, 16), 4, init="kmeans", random_state=0, **FAST)
    assert result.adjusted_rand_index(model.types) >= 0.9
    given = most_discriminative_stimuli(model, (1, 16, 16), 4, init=model.types, random_state=0, **FAST)
    assert given.adjusted_rand_index(model.types) == 1.0 and given.n_iter == 1  # already the fixed point


class _Reshaped(torch.nn.Module):
    def __init__(self, model, reshape):
        super().__init__()
        self.model, self.reshape = model, reshape

    def forward(self, x):
        return self.reshape(self.model(x))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_clusters=1), "'n_clusters' parameter must be an integer >= 2"),
        (dict(n_clusters=81), r"'n_clusters' parameter must be at most the number of units \(80\)"),
        (dict(n_clusters=2.0), "'n_clusters'"),
        (dict(image_shape=(16, 16)), r"'image_shape' parameter must be \(C, H, W\)"),
        (dict(image_shape=(1, 0, 16)), "'image_shape'"),
        (dict(tau=0.0), "'tau' parameter must be a positive number"),
        (dict(tau=-1.6), "'tau'"),
        (dict(n_steps=0), "'n_steps' parameter must be a positive integer"),
        (dict(pixel_range=(1.0, 0.0)), "'pixel_range'"),
        (dict(init="spectral"), "'init' parameter must be 'random', 'kmeans' or an array"),
        (dict(init=np.zeros(79, dtype=int)), r"'init' parameter, given as labels, must be an integer array of shape \(80,\)"),
        (dict(init=np.full(80, 4)), r"values in \[0, 4\)"),
        (dict(device="tpu"), "'device' parameter"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    _, model = planted_population(np.random.default_rng(0))
    args = dict(image_shape=(1, 16, 16), n_clusters=4) | kwargs
    with pytest.raises(ValueError, match=match):
        most_discriminative_stimuli(model, args.pop("image_shape"), args.pop("n_clusters"), **args)


@pytest.mark.parametrize(
    "reshape",
    [lambda r: r.mean(dim=1), lambda r: r.reshape(len(r), 8, 10), lambda r: r.reshape(1, -1), lambda r: r.tolist()],
    ids=["1-D", "3-D", "batch-lost", "not-a-tensor"],
)
def test_model_output_must_be_images_by_units(reshape):
    _, model = planted_population(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"'model' must map images of shape \(N, C, H, W\) to responses of shape"):
        most_discriminative_stimuli(_Reshaped(model, reshape), (1, 16, 16), 4, **FAST)


def test_adjusted_rand_index_checks_the_labels_shape():
    result = MDSResult(labels=np.array([0, 0, 1, 1]), stimuli=np.zeros((2, 1, 2, 2)), objective=np.zeros(1),
                       n_iter=1, converged=True)
    assert result.adjusted_rand_index(["a", "a", "b", "b"]) == 1.0
    with pytest.raises(ValueError, match=r"'true_labels' must have shape \(4,\)"):
        result.adjusted_rand_index([0, 1, 1])


@pytest.mark.gpu
def test_cuda_agrees_with_cpu():
    templates, model = planted_population(np.random.default_rng(0))
    results = {
        device: most_discriminative_stimuli(model, (1, 16, 16), 4, n_init=3, random_state=0,
                                            **(FAST | dict(device=device)))
        for device in ("cpu", "cuda")
    }
    np.testing.assert_array_equal(results["cuda"].labels, results["cpu"].labels)
    np.testing.assert_allclose(results["cuda"].stimuli, results["cpu"].stimuli, atol=1e-3)
