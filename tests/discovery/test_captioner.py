"""The CLIP-prefix captioner: it learns to name the concept of an embedding, on held-out embeddings and
BrainSCUBA directions of planted voxels; frozen decoder; save and load; clear errors."""

import numpy as np
import pytest

from captions_simulation import CONCEPTS, concept_world, planted_voxels, tiny_language_model
from neurodec.discovery import PrefixCaptioner, brainscuba_captions, load_prefix_captioner

DIM = 64


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(11)
    centres, bank, labels, captions = concept_world(rng, dim=DIM, n_per_concept=30)
    return centres, bank, labels, captions


@pytest.fixture(scope="module")
def trained(world):
    """A 2-layer, 64-wide GPT-2 and its mapping, fine-tuned together for ~60 steps (a few seconds)."""
    _, bank, _, captions = world
    decoder, tokenizer = tiny_language_model(captions)
    captioner = PrefixCaptioner(
        decoder, tokenizer, prefix_length=4, train_decoder=True, epochs=15, batch_size=30, lr=3e-3,
        random_state=0, device="cpu",
    )
    return captioner.fit(bank, captions)


def _named(caption):
    return [c for c in CONCEPTS if c in caption.split()]


@pytest.mark.slow  # shares the trained captioner: ~5 s of training after transformers' import
def test_training_lowers_the_loss_to_the_caption_entropy(trained):
    loss = trained.loss_history_
    assert loss.shape == (15,) and loss[-1] < loss[0]
    # Captions are template (3 choices) + concept (given by the embedding) + context (4 choices)
    # over ~9 tokens: an ideal captioner's loss is (log 3 + log 4) / 9 ~ 0.28 nats per token, and
    # the first epoch of a random model sits near log(vocabulary) ~ 3. Half-way between is learning.
    assert loss[-1] < 0.5 * loss[0]


@pytest.mark.slow  # shares the trained captioner: ~5 s of training after transformers' import
def test_held_out_embeddings_are_captioned_with_their_concept(trained, world):
    centres = world[0]
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(len(CONCEPTS)), 3)
    held_out = centres[labels] + 0.5 * rng.standard_normal((len(labels), DIM)) / np.sqrt(DIM)
    captions = trained.generate(held_out, num_beams=5, max_new_tokens=12)
    assert [_named(c) for c in captions] == [[CONCEPTS[k]] for k in labels]
    # Greedy decoding and small generate batches go through the same path.
    greedy = trained.generate(held_out, num_beams=1, max_new_tokens=12, batch_size=4)
    assert [_named(c) for c in greedy] == [[CONCEPTS[k]] for k in labels]


@pytest.mark.slow  # shares the trained captioner: ~5 s of training after transformers' import
def test_brainscuba_names_the_planted_concept_of_every_voxel(trained, world):
    centres, bank, _, _ = world
    weights, concept = planted_voxels(np.random.default_rng(9), centres, n_per_concept=3)
    table = brainscuba_captions(weights, bank, trained, num_beams=5, max_new_tokens=12, device="cpu")
    assert [_named(c) for c in table["caption"]] == [[CONCEPTS[k]] for k in concept]


@pytest.mark.slow  # shares the trained captioner: ~5 s of training after transformers' import
def test_save_and_load_round_trip(trained, world, tmp_path):
    centres = world[0]
    path = trained.save(tmp_path / "captioner")
    assert {p.name for p in path.iterdir()} == {"config.json", "mapping.safetensors", "decoder", "tokenizer"}
    assert any(p.suffix == ".safetensors" for p in (path / "decoder").iterdir())
    loaded = load_prefix_captioner(path, device="cpu")
    assert loaded.generate(centres, num_beams=3) == trained.generate(centres, num_beams=3)
    np.testing.assert_array_equal(loaded.loss_history_, trained.loss_history_)
    trained.save(path)  # overwriting an existing folder leaves one complete captioner and no temporaries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["captioner"]


def test_frozen_decoder_trains_only_the_mapping(world):
    import torch

    _, bank, _, captions = world
    decoder, tokenizer = tiny_language_model(captions, hidden=32)
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    captioner = PrefixCaptioner(
        decoder, tokenizer, prefix_length=2, mapping="transformer", mapping_layers=1, epochs=2, batch_size=60,
        random_state=0, device="cpu",
    ).fit(bank, captions)
    for key, value in captioner.decoder_.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert captioner.loss_history_[-1] < captioner.loss_history_[0]
    assert len(captioner.generate(bank[:2], max_new_tokens=4)) == 2


def test_seeded_fits_are_identical(world):
    _, bank, _, captions = world
    fits = []
    for _ in range(2):
        decoder, tokenizer = tiny_language_model(captions, hidden=32)
        fits.append(PrefixCaptioner(decoder, tokenizer, prefix_length=2, epochs=1, batch_size=60,
                                    random_state=3, device="cpu").fit(bank[:60], captions[:60]))
    np.testing.assert_array_equal(fits[0].loss_history_, fits[1].loss_history_)


# ------------------------------------------------------------------ bad input
def test_unreachable_decoder_says_what_to_do(world, tmp_path):
    _, bank, _, captions = world
    with pytest.raises(OSError, match=r"cannot load the GPT-2 decoder from '.*no-such-gpt2'.*local folder"):
        PrefixCaptioner(str(tmp_path / "no-such-gpt2")).fit(bank[:4], captions[:4])


def test_bad_inputs_are_named(trained, world):
    _, bank, _, captions = world
    with pytest.raises(ValueError, match="trained on 64-dimensional"):
        trained.generate(bank[:, :16])
    with pytest.raises(ValueError, match="not fitted"):
        PrefixCaptioner().generate(bank)
    with pytest.raises(ValueError, match="'mapping'"):
        PrefixCaptioner(mapping="lstm").fit(bank, captions)
    with pytest.raises(ValueError, match="one per embedding"):
        PrefixCaptioner(epochs=1).fit(bank, captions[:-1])
    with pytest.raises(ValueError, match="NaN"):
        trained.generate(np.full((1, DIM), np.nan))
