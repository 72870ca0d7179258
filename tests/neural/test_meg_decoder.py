"""MEGDecoder: layout, spatial attention and dropout, subject layers, shapes; retrieval beats ridge and chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meg_decoding_sim import hemisphere, simulate_meg_decoding
from neurodec.neural import MEGDecoder, sensor_layout_2d
from neurodec.neural import evaluate_meg_decoder, meg_decoder_inputs

SMALL = {"n_spatial": 8, "n_freqs": 4, "n_hidden": 16, "n_blocks": 2, "n_aggregate": 32}


def test_layout_projects_the_helmet_into_the_unit_square():
    pos = hemisphere(40)
    layout = sensor_layout_2d(pos)
    assert layout.shape == (40, 2) and layout.min() >= 0.1 - 1e-12 and layout.max() <= 0.9 + 1e-12
    # The sensor nearest the vertex lands nearest the centre of the layout.
    centre = layout.min(axis=0) + (layout.max(axis=0) - layout.min(axis=0)) / 2
    assert np.argmin(np.linalg.norm(layout - centre, axis=1)) == np.argmax(pos[:, 2])
    # Neighbours stay neighbours: distances on the helmet and in the layout rank alike.
    d3 = np.linalg.norm(pos[:, None] - pos[None], axis=2)[np.triu_indices(40, 1)]
    d2 = np.linalg.norm(layout[:, None] - layout[None], axis=2)[np.triu_indices(40, 1)]
    assert np.corrcoef(np.argsort(np.argsort(d3)), np.argsort(np.argsort(d2)))[0, 1] > 0.9
    with pytest.raises(ValueError, match="'positions'"):
        sensor_layout_2d(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="same place"):
        sensor_layout_2d(np.ones((5, 2)))


def test_spatial_dropout_silences_a_disc_of_sensors_only_while_training():
    torch.manual_seed(0)
    model = MEGDecoder(hemisphere(30), 20, 4, n_subjects=2, spatial_dropout=0.3, **SMALL)
    x = torch.randn(3, 30, 20)
    spatial = model.spatial
    torch.manual_seed(1)
    centre = torch.rand(2) * 0.8 + 0.1  # the centre the next training call draws
    dropped = (spatial.layout - centre).norm(dim=1) <= 0.3
    assert 0 < int(dropped.sum()) < 30
    spatial.train()
    torch.manual_seed(1)
    out = spatial(x)
    # Changing only the dropped sensors changes nothing: they get zero attention.
    x2 = x.clone()
    x2[:, dropped] = 100.0
    torch.manual_seed(1)
    assert torch.equal(out, spatial(x2))
    spatial.eval()
    assert not torch.allclose(spatial(x), spatial(x2))


def test_shapes_subject_layers_and_bad_input():
    torch.manual_seed(0)
    model = MEGDecoder(hemisphere(30), 20, 4, n_subjects=2, **SMALL).eval()
    x = torch.randn(5, 30, 20)
    clip, mse = model(x, torch.tensor([0, 1, 0, 1, 1]))
    assert clip.shape == mse.shape == (5, 4)
    # Identity-initialized subject layers: both subjects agree until trained apart.
    assert torch.allclose(model(x, torch.zeros(5, dtype=torch.long))[0], model(x, torch.ones(5, dtype=torch.long))[0])
    with torch.no_grad():
        model.subject_layer.weights[1] *= 2
    assert not torch.allclose(model(x, torch.zeros(5, dtype=torch.long))[0], model(x, torch.ones(5, dtype=torch.long))[0])
    assert MEGDecoder(hemisphere(30), 20, 4, temperature=0.1, **SMALL).logit_scale.requires_grad is False
    with pytest.raises(ValueError, match=r"shape \(batch, 30, 20\)"):
        model(torch.randn(5, 29, 20))
    with pytest.raises(ValueError, match="'aggregation'"):
        MEGDecoder(hemisphere(30), 20, 4, aggregation="max")
    with pytest.raises(ValueError, match="'n_times'"):
        MEGDecoder(hemisphere(30), 0, 4)


def test_subject_layer_matches_per_trial_weights_and_its_gradient_is_reproducible():
    # Identical-seed trainings drifted apart when the layer indexed ``weights[subject]``: that backward adds
    # the trials' gradients in a thread-dependent order on CPU (64 trials x 32 channels varied by ~4e-6).
    torch.manual_seed(0)
    layer = MEGDecoder(hemisphere(40), 20, 4, n_subjects=3, **{**SMALL, "n_spatial": 32}).subject_layer
    with torch.no_grad():
        layer.weights.add_(0.1 * torch.randn_like(layer.weights))
    x, subject = torch.randn(64, 32, 20), torch.randint(0, 3, (64,))
    reference = torch.einsum("bct,bcd->bdt", x, layer.weights[subject])
    assert torch.equal(layer(x, subject), reference)  # the one-hot product selects exactly
    upstream = torch.randn(64, 32, 20)
    grads = []
    for _ in range(20):
        layer.weights.grad = None
        (layer(x, subject) * upstream).sum().backward()
        grads.append(layer.weights.grad.clone())
    assert all(torch.equal(g, grads[0]) for g in grads)
    expected = torch.stack([torch.einsum("bct,bdt->cd", x[subject == s], upstream[subject == s]) for s in range(3)])
    # float32 sums of 64 x 20 products of unit-variance values: a few ulps of their magnitude (~sqrt(1280)).
    assert torch.allclose(grads[0], expected, rtol=0, atol=1e-4)


def test_inputs_stack_subjects_and_refuse_bad_responses():
    r1, emb = simulate_meg_decoding(n_train_images=6, n_test_images=4, n_channels=10, n_times=12, seed=1)
    r2, _ = simulate_meg_decoding(n_train_images=6, n_test_images=4, n_channels=10, n_times=12, seed=2)
    d = meg_decoder_inputs([r1, r2], emb)
    assert d["X"].shape == (40, 10, 12) and d["Y"].shape == (40, 16)
    assert np.array_equal(d["subject"], np.repeat([0, 1], 20))
    assert np.array_equal(d["Y"][:20], emb.align(r1.stimulus_ids).astype(np.float32))
    r3, _ = simulate_meg_decoding(n_train_images=6, n_test_images=4, n_channels=11, n_times=12)
    with pytest.raises(ValueError, match="share channels and times"):
        meg_decoder_inputs([r1, r3], emb)
    r1.units = r1.units.drop(columns=["x", "y", "z"])
    with pytest.raises(ValueError, match="sensor positions"):
        meg_decoder_inputs(r1, emb)


@pytest.mark.slow  # ~15-25 s on 2 idle cores
def test_decoder_beats_ridge_and_chance_under_latency_jitter():
    # Evoked waves 20 ms wide whose latency jitters by +-200 ms: a linear decoder of the flattened epoch sees a
    # smeared template, the convolutional decoder (shift-equivariant, mean over time) does not.
    responses, embeddings = simulate_meg_decoding(jitter=0.2, noise=0.15, n_dims=8, n_sources=8)
    result = evaluate_meg_decoder(
        responses, embeddings, model_params={**SMALL, "n_spatial": 32, "n_freqs": 8, "n_hidden": 32,
                                             "n_aggregate": 64, "aggregation": "mean"},
        n_epochs=20, batch_size=32, lr=3e-3, patience=None, device="cpu",
    )
    n = result.n_test
    assert n == 100 and result.scores["chance"]["top5"] == 0.05
    dec, ridge = result.scores["decoder"]["top5"], result.scores["ridge"]["top5"]
    # Three binomial standard errors: above chance, and above the ridge by the widest sd of a difference of two
    # proportions over n images (p = 0.5).
    assert dec > 0.05 + 3 * np.sqrt(0.05 * 0.95 / n)
    assert dec - ridge > 3 * np.sqrt(2 * 0.25 / n)
    assert result.decoder_predictions.shape == result.ridge_predictions.shape == result.true_embeddings.shape == (n, 8)
    assert result.training.history[-1]["val_loss"] < result.training.history[0]["val_loss"]
