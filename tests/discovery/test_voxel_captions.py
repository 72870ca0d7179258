"""BrainSCUBA's projection and LaVCa's captions on a planted concept world; the caption score; bad input."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from captions_simulation import CONCEPTS, concept_world, planted_voxels
from float32_tolerance import float32_atol
from neurodec.discovery import brainscuba_captions, lavca_captions, project_to_image_embeddings, score_captions

DIM = 64


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(7)
    centres, bank, labels, captions = concept_world(rng, dim=DIM)
    weights, concept = planted_voxels(rng, centres)
    return centres, bank, labels, captions, weights, concept


def _reference_projection(weights, bank, temperature):
    """BrainSCUBA's formula in float64 numpy, one unit at a time."""
    e = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    out = []
    for w in weights.T.astype(np.float64):
        logits = temperature * e @ (w / np.linalg.norm(w))
        s = np.exp(logits - logits.max())
        s /= s.sum()
        d = s @ e
        out.append(d / np.linalg.norm(d))
    return np.array(out)


@pytest.mark.parametrize("temperature", [1.0, 150.0])
def test_projection_matches_the_formula_in_any_batch(world, temperature):
    _, bank, _, _, weights, _ = world
    expected = _reference_projection(weights, bank, temperature)
    # float32 sums over the bank (softmax-weighted mean) and over the features (dot products).
    atol = float32_atol(len(bank) + DIM, scale=temperature)
    for batch in (None, 3):
        got = project_to_image_embeddings(weights, bank, temperature=temperature, n_units_batch=batch, device="cpu")
        assert got.shape == (weights.shape[1], DIM) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=atol)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=float32_atol(DIM))


def test_projection_recovers_the_planted_concept_better_than_the_raw_weights(world):
    centres, bank, _, _, weights, concept = world
    directions = project_to_image_embeddings(weights, bank, device="cpu")
    # Every projected direction's nearest concept centre is the planted one.
    np.testing.assert_array_equal(np.argmax(directions @ centres.T, axis=1), concept)
    # Noisy weights (noise norm 1 vs a unit centre) sit far from their centre; the projection
    # lands among the concept's images, whose cosine to the centre is ~1/sqrt(1 + 0.5^2).
    w_hat = weights.T / np.linalg.norm(weights.T, axis=1, keepdims=True)
    raw = np.sum(w_hat * centres[concept], axis=1)
    projected = np.sum(directions * centres[concept], axis=1)
    assert np.all(projected > raw)


def test_projection_limits_of_the_temperature(world):
    _, bank, _, _, weights, _ = world
    e = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    mean = e.mean(axis=0) / np.linalg.norm(e.mean(axis=0))
    cold = project_to_image_embeddings(weights, bank, temperature=1e-6, device="cpu")
    np.testing.assert_allclose(cold, np.broadcast_to(mean, cold.shape), atol=1e-4)
    hot = project_to_image_embeddings(weights, bank, temperature=1e5, device="cpu")
    nearest = np.argmax(weights.T @ e.T, axis=1)
    np.testing.assert_allclose(hot, e[nearest], atol=float32_atol(DIM))


def test_brainscuba_with_a_callable_captioner_and_nearest_images(world):
    centres, bank, labels, _, weights, concept = world

    def nearest_concept_captioner(embeddings):
        return [f"a photo of a {CONCEPTS[k]}" for k in np.argmax(embeddings @ centres.T, axis=1)]

    table = brainscuba_captions(weights, bank, nearest_concept_captioner, units=[0, 7, 19], n_nearest=3, device="cpu")
    assert list(table["unit"]) == [0, 7, 19]
    assert list(table["caption"]) == [f"a photo of a {CONCEPTS[concept[u]]}" for u in (0, 7, 19)]
    for row in table.itertuples():
        assert np.all(labels[row.nearest_images] == concept[row.unit])
        assert np.all(np.diff(row.nearest_weights) <= 0) and row.nearest_weights.sum() <= 1 + 1e-6


def _predictions(world, noise=0.1):
    _, bank, _, _, weights, _ = world
    rng = np.random.default_rng(1)
    pred = bank @ weights
    return pred + noise * pred.std() * rng.standard_normal(pred.shape)


def test_lavca_ranks_the_planted_concept_first(world):
    _, _, labels, captions, _, concept = world
    table = lavca_captions(_predictions(world), captions, top_n=20, n_keywords=3)
    assert list(table["unit"]) == list(range(len(concept)))
    for row in table.itertuples():
        planted = CONCEPTS[concept[row.unit]]
        assert row.keywords[0] == planted
        # The concept word is in a fraction p of the top captions (the top images of the planted
        # concept) and in a quarter of all captions: its score is p * log(4 p).
        p = np.mean(labels[row.top_images] == concept[row.unit])
        assert p > 1 / len(CONCEPTS)  # enriched above the planted concept's share of the bank
        np.testing.assert_allclose(row.keyword_scores[0], p * np.log(len(CONCEPTS) * p), rtol=1e-12)
        assert np.all(row.keyword_scores[1:] < row.keyword_scores[0])
        assert row.sentence.startswith(f"a photo of {planted}")
        assert len(row.top_images) == 20


def test_lavca_with_an_image_captioner_and_a_summarize_hook(world):
    _, bank, labels, captions, _, concept = world
    calls = []

    def image_captioner(images):
        calls.append(len(images))
        index = {tuple(b): i for i, b in enumerate(bank)}
        return [captions[index[tuple(x)]] for x in images]

    table = lavca_captions(
        _predictions(world), images=bank, image_captioner=image_captioner, top_n=10, n_keywords=2,
        summarize=lambda caps, words: f"{len(caps)} images about {words[0]}", units=[2, 12],
    )
    assert len(calls) == 1 and calls[0] <= 20  # one call on the union of top images
    assert list(table["sentence"]) == [f"10 images about {CONCEPTS[concept[u]]}" for u in (2, 12)]


def _concept_text_embedder(centres):
    """Text embedding = the centre of the concept a caption names (a stand-in for a CLIP text tower)."""

    def embed(texts):
        words = [set(re.findall(r"[a-z]+", t.lower())) for t in texts]
        return np.array([sum((centres[k] for k, c in enumerate(CONCEPTS) if c in w), np.zeros(DIM)) for w in words])

    return embed


def test_score_captions_prefers_the_caption_naming_the_planted_concept(world):
    centres, bank, _, _, weights, concept = world
    responses = _predictions(world)
    embed = _concept_text_embedder(centres)
    scores = np.stack([
        score_captions([f"a photo of a {c}"] * len(concept), embed, bank, responses) for c in CONCEPTS
    ])  # (n_concepts, n_units)
    np.testing.assert_array_equal(np.argmax(scores, axis=0), concept)
    # Pearson r against scipy's for one unit.
    from scipy.stats import pearsonr

    # Both in float64: sums over 200 images and 64 features of terms <= 1 in magnitude.
    e = bank.astype(np.float64) / np.linalg.norm(bank.astype(np.float64), axis=1, keepdims=True)
    sim = e @ centres[1] / np.linalg.norm(centres[1])
    eps64 = np.finfo(np.float64).eps
    np.testing.assert_allclose(scores[1, 0], pearsonr(sim, responses[:, 0]).statistic, rtol=0, atol=264 * eps64)


def test_both_methods_on_one_scale(world):
    centres, bank, _, captions, weights, concept = world
    responses = _predictions(world)
    embed = _concept_text_embedder(centres)
    lavca = lavca_captions(responses, captions, top_n=20)["sentence"].tolist()
    scuba = brainscuba_captions(
        weights, bank, lambda d: [f"a photo of a {CONCEPTS[k]}" for k in np.argmax(d @ centres.T, axis=1)], device="cpu"
    )["caption"].tolist()
    wrong = [f"a photo of a {CONCEPTS[(k + 1) % len(CONCEPTS)]}" for k in concept]
    for good in (lavca, scuba):
        assert np.all(score_captions(good, embed, bank, responses) > score_captions(wrong, embed, bank, responses))


# ------------------------------------------------------------------ bad input
def test_bank_of_the_wrong_dimension_names_both(world):
    _, bank, _, _, weights, _ = world
    with pytest.raises(ValueError, match=r"'bank'.*has 16 features.*weights have 64"):
        project_to_image_embeddings(weights, bank[:, :16])


@pytest.mark.parametrize("temperature", [0.0, -1.0, np.inf])
def test_temperature_must_be_positive(world, temperature):
    _, bank, _, _, weights, _ = world
    with pytest.raises(ValueError, match="'temperature'.*> 0"):
        project_to_image_embeddings(weights, bank, temperature=temperature)


def test_top_n_beyond_the_images(world):
    _, bank, _, captions, _, _ = world
    with pytest.raises(ValueError, match=rf"'top_n'.*\[1, {len(bank)}\]"):
        lavca_captions(_predictions(world), captions, top_n=len(bank) + 1)


def test_captions_and_text_embeddings_must_match(world):
    centres, bank, _, captions, _, _ = world
    responses = _predictions(world)
    with pytest.raises(ValueError, match="one caption per image"):
        lavca_captions(responses, captions[:-1])
    with pytest.raises(ValueError, match="one per unit"):
        score_captions(["a dog"], _concept_text_embedder(centres), bank, responses)
    with pytest.raises(ValueError, match=r"expected \(20, 64\)"):
        score_captions(["a dog"] * 20, lambda t: np.ones((len(t), 8)), bank, responses)


def _fit_model(world):
    """A real EncodingModel fit on the bank embeddings; unit 0's responses are constant (excluded)."""
    from neurodec.data import Features, Responses
    from neurodec.encoding import EncodingModel

    _, bank, _, _, weights, _ = world
    rng = np.random.default_rng(3)
    ids = np.array([f"img{i:04d}" for i in range(len(bank))])
    data = bank @ weights + 0.05 * rng.standard_normal((len(bank), weights.shape[1]))
    data[:, 0] = 1.0
    trials = pd.DataFrame({"stimulus_id": ids, "session": 1, "run": 1, "repeat": 0, "split": "train"})
    responses = Responses(data=data.astype(np.float32), trials=trials, units=pd.DataFrame(index=range(data.shape[1])),
                          subject="sim", space="embedding")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the excluded-unit warning is the point here
        return EncodingModel(alphas=np.logspace(-3, 3, 7), device="cpu", random_state=0).fit(
            Features(bank, ids, name="sim/clip"), responses
        )


def test_encoding_model_input_refuses_excluded_units(world):
    centres, bank, _, _, _, concept = world
    model = _fit_model(world)
    assert not model.valid_units_[0] and model.valid_units_[1:].all()
    with pytest.raises(ValueError, match=r"1 of the 20 units have no fitted weights.*units \[0\].*valid_units_"):
        project_to_image_embeddings(model, bank)
    units = np.flatnonzero(model.valid_units_)
    table = brainscuba_captions(
        model, bank, lambda d: [CONCEPTS[k] for k in np.argmax(d @ centres.T, axis=1)], units=units, device="cpu"
    )
    assert list(table["caption"]) == [CONCEPTS[k] for k in concept[units]]


def test_tensor_inputs_give_the_same_directions(world):
    import torch

    _, bank, _, _, weights, _ = world
    from_arrays = project_to_image_embeddings(weights, bank, device="cpu")
    from_tensors = project_to_image_embeddings(torch.from_numpy(weights), torch.from_numpy(bank))  # "auto": their device
    np.testing.assert_array_equal(from_tensors, from_arrays)
