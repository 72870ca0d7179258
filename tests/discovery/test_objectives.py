"""Objectives over units: values, gradients, reprs and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurodec.discovery import one_unit, roi_contrast, roi_mean, weighted_units


@pytest.fixture
def responses(rng):
    return torch.as_tensor(rng.normal(size=(5, 8)))


def test_values_match_their_definitions(responses):
    r = responses.numpy()
    np.testing.assert_allclose(roi_mean([1, 4, 6])(responses).numpy(), r[:, [1, 4, 6]].mean(axis=1), rtol=1e-12)
    mask = np.zeros(8, bool)
    mask[[0, 2]] = True
    np.testing.assert_allclose(roi_mean(mask)(responses).numpy(), r[:, [0, 2]].mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(
        roi_contrast([0, 1], [5, 6, 7])(responses).numpy(), r[:, [0, 1]].mean(1) - r[:, [5, 6, 7]].mean(1), rtol=1e-12
    )
    np.testing.assert_array_equal(one_unit(3)(responses).numpy(), r[:, 3])
    w = np.linspace(-1, 1, 8)
    np.testing.assert_allclose(weighted_units(w)(responses).numpy(), r @ w, rtol=1e-12, atol=1e-15)


def test_gradient_is_the_weight_vector(responses):
    x = responses.clone().requires_grad_(True)
    roi_contrast([0, 1], [7])(x).sum().backward()
    expected = np.zeros((5, 8))
    expected[:, [0, 1]], expected[:, 7] = 0.5, -1.0
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_reprs_are_readable():
    assert repr(roi_mean(range(10))) == "roi_mean(units=[0, 1, 2, 3, 4, 5, ...] (10 units))"
    assert repr(one_unit(7)) == "one_unit(7)"
    assert repr(weighted_units([0.5, 0.0, -1.0])) == "weighted_units(3 weights, 2 nonzero)"


def test_bad_units_and_weights_are_named(responses):
    with pytest.raises(ValueError, match="uses unit 9, but the responses have only 8 units"):
        roi_mean([1, 9])(responses)
    with pytest.raises(ValueError, match="out of range for 8 units"):
        roi_mean([1, 9], n_units=8)
    with pytest.raises(ValueError, match="expects responses with 3 units; got 8"):
        weighted_units([1.0, 0.0, 2.0])(responses)
    with pytest.raises(ValueError, match="must be disjoint; they share units \\[2\\]"):
        roi_contrast([1, 2], [2, 3])
    with pytest.raises(ValueError, match="selects no units"):
        roi_mean([])
    with pytest.raises(ValueError, match="negative unit indices"):
        roi_mean([-1])
    with pytest.raises(ValueError, match="integer unit index"):
        one_unit(1.5)
    with pytest.raises(ValueError, match="all zero"):
        weighted_units(np.zeros(4))
    with pytest.raises(ValueError, match="must be finite"):
        weighted_units([1.0, np.nan])
    with pytest.raises(ValueError, match=r"tensor of shape \(n_images, n_units\)"):
        roi_mean([0])(responses[0])
