"""Brain captioning: decoded CLIP-prefix features name the planted concept of held-out images far
above chance; the nearest-training-caption baseline runs and is scored beside it; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from captions_simulation import CONCEPTS, concept_world, tiny_language_model
from scipy.stats import binom

from neurodec.decoding import LinearDecoder, brain_captions, evaluate_brain_captions, nearest_training_captions

DIM, N_VOXELS = 64, 150


def _voxels(rng, embeddings, weights):
    """Voxels that encode the embeddings linearly, with noise as strong as the signal."""
    signal = embeddings @ weights
    return signal + signal.std() * rng.standard_normal(signal.shape)


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(21)
    centres, bank, labels, captions = concept_world(rng, dim=DIM, n_per_concept=30)
    weights = rng.standard_normal((DIM, N_VOXELS))
    test_labels = np.repeat(np.arange(len(CONCEPTS)), 8)
    test_embeddings = centres[test_labels] + 0.5 * rng.standard_normal((len(test_labels), DIM)) / np.sqrt(DIM)
    X_train, X_test = _voxels(rng, bank, weights), _voxels(rng, test_embeddings, weights)
    decoder = LinearDecoder(restandardize=True, device="cpu").fit(X_train, bank)
    from neurodec.discovery import PrefixCaptioner

    lm, tokenizer = tiny_language_model(captions)
    captioner = PrefixCaptioner(lm, tokenizer, prefix_length=4, train_decoder=True, epochs=15, batch_size=30,
                                lr=3e-3, random_state=0, device="cpu").fit(bank, captions)
    return dict(bank=bank, captions=captions, X_test=X_test, test_labels=test_labels, decoder=decoder,
                captioner=captioner)


def _named(caption):
    return [c for c in CONCEPTS if c in caption.split()]


def _concept_counts(texts):
    """A bag-of-concepts text encoder (a stand-in for a CLIP text tower): the similarity is concept agreement."""
    return np.array([[t.split().count(c) for c in CONCEPTS] + [1e-3] for t in texts], dtype=float)


@pytest.mark.slow  # trains a tiny GPT-2 captioner: ~5-10 s on a shared CPU
def test_brain_captions_name_the_planted_concept_far_above_chance(study):
    captions = brain_captions(study["decoder"], study["captioner"], study["X_test"], num_beams=3, max_new_tokens=12)
    hits = sum(_named(c) == [CONCEPTS[k]] for c, k in zip(captions, study["test_labels"]))
    n = len(captions)
    # Chance names the right one of 4 concepts; this many hits has probability < 1e-6 under chance.
    assert hits > binom.isf(1e-6, n, 1 / len(CONCEPTS))
    assert hits >= 0.8 * n


@pytest.mark.slow  # shares the trained captioner
def test_baseline_is_scored_beside_the_captioner(study):
    references = [f"a photo of a {CONCEPTS[k]}" for k in study["test_labels"]]
    result = evaluate_brain_captions(
        study["decoder"], study["captioner"], study["X_test"], references, train_embeddings=study["bank"],
        train_captions=study["captions"], protocol="embedding", metrics=["clip"], encode_text=_concept_counts,
        num_beams=3, max_new_tokens=12,
    )
    assert list(result.scores.index) == ["brain captioner", "nearest training caption"]
    assert list(result.scores.columns) == ["clip"]
    assert result.per_caption["brain captioner"].shape == (len(references), 1)
    # The baseline's captions are training captions, of the nearest training embedding.
    train = study["bank"]
    decoded = result.decoded / np.linalg.norm(result.decoded, axis=1, keepdims=True)
    expected = np.argmax(decoded @ (train / np.linalg.norm(train, axis=1, keepdims=True)).T, axis=1)
    np.testing.assert_array_equal(result.nearest_train_index, expected)
    assert result.baseline_captions == [study["captions"][i] for i in expected]
    # Both name the concept far above chance (a concept-agreement score of 1/4 on average by chance).
    assert (result.scores["clip"] > 0.8).all()


def test_nearest_training_caption_hand_computed():
    train = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    captions, index = nearest_training_captions(np.array([[0.1, 5.0], [3.0, 0.2], [-2.0, -1.5]]), train,
                                                ["right", "up", "down-left"])
    assert captions == ["up", "right", "down-left"] and index.tolist() == [1, 0, 2]


def test_bad_input_is_named(rng):
    train = rng.standard_normal((5, 4))
    with pytest.raises(ValueError, match="'train_embeddings' have 4 dimensions but the decoded embeddings 3"):
        nearest_training_captions(rng.standard_normal((2, 3)), train, ["a"] * 5)
    with pytest.raises(ValueError, match="5 strings, one per training embedding"):
        nearest_training_captions(rng.standard_normal((2, 4)), train, ["a"] * 4)

    class Captioner:
        embed_dim_ = 8

    decoder = LinearDecoder(alphas=[1.0], device="cpu").fit(rng.standard_normal((20, 6)), rng.standard_normal((20, 4)))
    with pytest.raises(ValueError, match="captioner takes 8-dimensional embeddings"):
        brain_captions(decoder, Captioner(), rng.standard_normal((3, 6)))
    with pytest.raises(ValueError, match="not fitted"):
        brain_captions(decoder, object(), rng.standard_normal((3, 6)))
