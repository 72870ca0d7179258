"""In-silico responses: written like measured ones, so an EncodingModel refit recovers the encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoder_fixtures import N_TRAIN, N_UNITS, as_tensor, features_of, fit_model, resnet, tiny_stimuli
from float32_tolerance import EPS32
from neurodec.data import Responses, Stimuli
from neurodec.discovery import BrainEncoder, predict_responses
from neurodec.encoding import EncodingModel


@pytest.fixture(scope="module")
def setup():
    stimuli, backbone = tiny_stimuli(), resnet()
    ids = list(stimuli.ids)
    features = features_of(backbone, stimuli, [("layer3", "avg")], reduction="pca", n_components=12,
                           fit_ids=ids[:N_TRAIN])
    model, responses = fit_model(features, stimuli)
    encoder = BrainEncoder.from_fitted(backbone, model, features, responses=responses)
    return stimuli, features, model, responses, encoder


def test_predicted_responses_are_a_responses_with_provenance(setup):
    stimuli, _, model, _, encoder = setup
    split = np.where(np.arange(len(stimuli)) < N_TRAIN, "train", "test")
    predicted = predict_responses(encoder, stimuli, split=split, batch_size=7, verbose=False)
    assert isinstance(predicted, Responses) and predicted.shape == (len(stimuli), N_UNITS)
    assert list(predicted.trials["stimulus_id"]) == list(stimuli.ids)
    assert list(predicted.trials["split"]) == split.tolist() and (predicted.trials["repeat"] == 0).all()
    assert (predicted.subject, predicted.space, predicted.modality) == ("sub-01", "toy", "fmri")
    assert predicted.info["in_silico"]["model"] == model.name_ and predicted.info["in_silico"]["backbone"] == "timm/resnet18"
    np.testing.assert_array_equal(predicted.units["model_unit"], np.arange(N_UNITS))
    assert predicted.roi_mask("toy", "B").tolist() == [False] * 3 + [True] * 3  # ROI columns carried over
    with torch.no_grad():
        direct = encoder(as_tensor(stimuli)).numpy()
    # Batches of 7 vs one batch of 48: the same sums, possibly in another order.
    np.testing.assert_allclose(predicted.data, direct, rtol=0, atol=64 * EPS32 * np.abs(direct).max())
    from_tensor = predict_responses(encoder, as_tensor(stimuli)[:5], verbose=False)
    assert list(from_tensor.trials["stimulus_id"]) == list(range(5))
    np.testing.assert_allclose(from_tensor.data, direct[:5], rtol=0, atol=64 * EPS32 * np.abs(direct).max())


def test_refitting_the_in_silico_responses_recovers_the_encoder_weights(setup):
    stimuli, features, model, _, encoder = setup
    split = np.where(np.arange(len(stimuli)) < N_TRAIN, "train", "test")
    predicted = predict_responses(encoder, stimuli, split=split, verbose=False)
    alpha = 1e-3
    refit = EncodingModel(alphas=[alpha], cv=3, device="cpu", warn_alpha_edge=False).fit(features, predicted)
    # Same training stimuli, so the same standardization; the responses are an exact linear function of the
    # standardized features, and ridge shrinks the true weights by at most alpha / (alpha + lambda_min)
    # (lambda_min: smallest eigenvalue of Xs'Xs), plus the float32 rounding of the responses, amplified by
    # at most 1 / sqrt(lambda_min).
    np.testing.assert_allclose(refit.feature_mean_, model.feature_mean_, rtol=1e-12)
    Xs = (features[0].data[:N_TRAIN] - model.feature_mean_) / model.feature_scale_
    lam_min = np.linalg.eigvalsh(Xs.T @ Xs).min()
    coef = model.coef_.astype(np.float64)
    y_error = np.sqrt(N_TRAIN) * 64 * EPS32 * np.abs(predicted.data).max()
    bound = alpha / (alpha + lam_min) * np.linalg.norm(coef, axis=0) + y_error / np.sqrt(lam_min)
    assert np.all(np.linalg.norm(refit.coef_ - coef, axis=0) <= bound)
    test = predicted.split("test")
    new = refit.predict(features, stimulus_ids=test.trials["stimulus_id"])
    assert min(np.corrcoef(new[:, u], test.data[:, u])[0, 1] for u in range(N_UNITS)) > 0.999


def test_mixed_image_sizes_and_bad_input(setup):
    _, _, _, _, encoder = setup
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size=shape, dtype=np.uint8) for shape in [(32, 32, 3), (40, 48, 3), (32, 32)]]
    mixed = Stimuli(["a", "b", "c"], source=_ListImages(images), keys=[0, 1, 2])
    predicted = predict_responses(encoder, mixed, verbose=False)
    single = predict_responses(encoder, mixed.subset(["b"]), verbose=False)
    np.testing.assert_array_equal(predicted.data[1], single.data[0])
    with pytest.raises(ValueError, match="'split' values must be 'train' or 'test'"):
        predict_responses(encoder, np.zeros((2, 32, 32, 3), np.uint8), split="val", verbose=False)
    with pytest.raises(ValueError, match=r"float images of shape \(n_images, 3, height, width\)"):
        predict_responses(encoder, torch.zeros(2, 32, 32, 3, dtype=torch.uint8), verbose=False)
    with pytest.raises(ValueError, match="positive integer"):
        predict_responses(encoder, np.zeros((2, 32, 32, 3), np.uint8), batch_size=0, verbose=False)


class _ListImages:
    """Images of different sizes, read by list index."""

    def __init__(self, images: list) -> None:
        self.images = images

    def read(self, key: int) -> np.ndarray:
        return self.images[key]

    def fingerprint(self, keys) -> str:
        return "list"
