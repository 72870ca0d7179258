"""The iEEG spatiotemporal transformer: spatial tokens, masking, pretraining, probe."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from _ieeg_sim import simulate_speech_music
from float32_tolerance import float32_atol
from neurodec.neural.ieeg_tokens import spatial_layout
from neurodec.neural.ieeg_transformer import IEEGTransformer, make_token_mask

SMALL = dict(patch_len=16, d_model=32, n_heads=4, n_layers=1, dropout=0.0)


@pytest.fixture(scope="module")
def sim():
    # Speech raises high gamma in two channels of every region, so hidden tokens are predictable from context.
    return simulate_speech_music(np.random.default_rng(0), n_trials=120, effect=1.0, test_fraction=0.5,
                                 responsive=(0, 1, 4, 5, 8, 9, 12, 13))


def test_spatial_layout_groups_channels_at_each_scale(sim):
    channel = spatial_layout(sim.units, "channel")
    assert channel.groups == tuple(sim.units["name"]) and channel.n_groups == 16
    np.testing.assert_array_equal(channel.positions, sim.units[["x", "y", "z"]].to_numpy())
    region = spatial_layout(sim.units, "region")
    assert region.groups == ("LA-deep", "LA-superficial", "RT-deep", "RT-superficial")  # order of appearance
    np.testing.assert_array_equal(region.assignment, np.repeat([0, 1, 2, 3], 4))
    # A region sits at the mean position of its channels.
    np.testing.assert_allclose(region.positions[1], sim.units[["x", "y", "z"]].to_numpy()[4:8].mean(axis=0))
    lobe = spatial_layout(sim.units, "lobe")
    assert lobe.groups == ("temporal", "parietal")
    np.testing.assert_allclose(lobe.pooling_matrix().sum(axis=1), 1.0)


def test_spatial_layout_rejects_bad_input(sim):
    with pytest.raises(ValueError, match="'scale' parameter must be one of"):
        spatial_layout(sim.units, "parcel")
    with pytest.raises(ValueError, match="no column 'area'"):
        spatial_layout(sim.units, "region", label_column="area")
    units = sim.units.copy()
    units.loc[3, "region"] = "n/a"
    with pytest.raises(ValueError, match=r"\['LA4'\] have no label in column 'region'"):
        spatial_layout(units, "region")
    with pytest.raises(ValueError, match="channel name column"):
        spatial_layout(sim.units.drop(columns="name"), "channel")


def test_electrodes_without_coordinates_fall_back_to_label_embeddings(sim):
    units = sim.units.copy()
    units.loc[[2, 5], ["x", "y", "z"]] = np.nan
    with pytest.warns(UserWarning, match=r"2 of 16 channel token\(s\) have no coordinates \(\['LA3', 'LA6'\]\)"):
        layout = spatial_layout(units, "channel")
    np.testing.assert_array_equal(np.flatnonzero(~layout.has_position), [2, 5])
    torch.manual_seed(0)
    model = IEEGTransformer(layout, **SMALL)
    before = model.spatial_embedding().detach().clone()
    with torch.no_grad():
        model.spatial_embedding.labels.add_(1.0)  # only the label-embedded tokens may move
    moved = (model.spatial_embedding().detach() - before).abs().amax(dim=1)
    np.testing.assert_array_equal(np.flatnonzero(moved.numpy() > 0), [2, 5])
    # No coordinate columns at all: every token falls back, with the warning.
    with pytest.warns(UserWarning, match="16 of 16 channel token"):
        spatial_layout(sim.units.drop(columns=["x", "y", "z"]), "channel")
    # A region with one located channel keeps a position: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spatial_layout(units, "region").has_position.all()


def test_token_mask_hides_a_fixed_count_per_sample_reproducibly():
    mask = make_token_mask(6, 4, 5, 0.3, generator=torch.Generator().manual_seed(1))
    assert mask.shape == (6, 4, 5) and mask.dtype == torch.bool
    np.testing.assert_array_equal(mask.sum(dim=(1, 2)).numpy(), 6)  # round(0.3 * 20)
    again = make_token_mask(6, 4, 5, 0.3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(mask, again)
    assert len({tuple(m.flatten().tolist()) for m in mask}) > 1  # samples draw their own masks
    for ratio in (0.0, 1.0, -0.2):
        with pytest.raises(ValueError, match="'ratio' must lie strictly between 0 and 1"):
            make_token_mask(2, 4, 5, ratio)


@pytest.mark.parametrize("scale,n_groups", [("channel", 16), ("region", 4), ("lobe", 2)])
def test_forward_shapes_at_every_scale(sim, scale, n_groups):
    torch.manual_seed(0)
    model = IEEGTransformer.from_responses(sim, scale, **SMALL).eval()
    x = torch.as_tensor(sim.data[:3, :, :120])  # 120 samples -> 7 patches, the last 8 samples unread
    assert model(x).shape == (3, n_groups, 7, 32)
    assert model.embed(x).shape == (3, n_groups * 32)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 16 channels, n_times\)"):
        model(x[:, :5])
    with pytest.raises(ValueError, match="shorter than one patch"):
        model(x[:, :, :8])


def test_masked_tokens_hide_their_content(sim):
    torch.manual_seed(0)
    model = IEEGTransformer.from_responses(sim, "channel", **SMALL).eval()
    x = torch.as_tensor(sim.data[:2])
    mask = torch.zeros(2, 16, 8, dtype=torch.bool)
    mask[0, 3, 2] = True
    changed = x.clone()
    changed[0, 3, 32:48] += 5.0  # the content of channel 3, patch 2 of sample 0
    with torch.no_grad():
        out, out_changed = model(x, mask), model(changed, mask)
        unmasked = model(changed)
    # Hidden content cannot reach any output; visible content does.
    torch.testing.assert_close(out_changed, out, rtol=0, atol=float32_atol(32 * 128, 10.0))
    assert (unmasked[0] - out[0]).abs().max() > 1e-2


def test_region_tokens_average_channel_tokens(sim):
    torch.manual_seed(0)
    channel = IEEGTransformer.from_responses(sim, "channel", **SMALL)
    region = IEEGTransformer.from_responses(sim, "region", **SMALL)
    region.temporal_encoder.load_state_dict(channel.temporal_encoder.state_dict())
    x = torch.as_tensor(sim.data[:2])
    with torch.no_grad():
        expected = channel.tokenize(x).view(2, 4, 4, 8, 32).mean(dim=2)
        torch.testing.assert_close(region.tokenize(x), expected, rtol=0, atol=float32_atol(16, 10.0))


@pytest.fixture(scope="module")
def pretrained(sim):
    from neurodec.neural import pretrain_masked_latent, seed_everything

    seed_everything(0)
    encoder = IEEGTransformer.from_responses(sim, "region", **SMALL)
    train, test = sim.train_test_split()
    return pretrain_masked_latent(encoder, train, val_data=test, n_epochs=8, batch_size=10, lr=2e-3,
                                  random_state=0, device="cpu", verbose=False)


@pytest.mark.slow
def test_pretraining_learns_to_predict_hidden_latents(pretrained):
    val = pretrained.val_loss
    assert pretrained.train_loss.shape == (8,) and val.shape == (9,)
    # Targets are standardized over the batch, so predicting nothing but their mean scores 1.
    # The validation loss averages ~30,000 squared values (60 epochs x 16 masked tokens x 32
    # features; sampling error < 0.01): ending below 0.95 is a real gain from context.
    assert val[-1] < 0.95 and val[-1] < val[0]
    assert pretrained.samples_per_second > 0
    assert not pretrained.encoder.training


@pytest.mark.slow
@pytest.mark.parametrize("finetune", [False, True])
def test_probe_beats_chance_with_the_linear_baseline_beside_it(sim, pretrained, finetune):
    from neurodec.neural import evaluate_ieeg_probe

    before = {k: v.clone() for k, v in pretrained.encoder.state_dict().items()}
    result = evaluate_ieeg_probe(pretrained.encoder, sim, "condition", positive="speech", finetune=finetune,
                                 n_epochs=5, batch_size=10, lr=3e-4, device="cpu", verbose=False)
    assert (result.n_train, result.n_positive + result.n_negative, result.finetuned) == (60, 60, finetune)
    # Chance ROC-AUC has sd sqrt((n1 + n2 + 1) / (12 n1 n2)) ~ 0.075 on these 60 test trials:
    # 3 sd above 0.5 is a one-sided p < 0.002 under the null.
    margin = 3 * result.chance_sd
    assert result.roc_auc > 0.5 + margin
    assert result.baseline_roc_auc > 0.5 + margin  # the planted effect is linear in high gamma
    # The pretrained encoder is left as it was (fine-tuning works on a copy).
    for key, value in pretrained.encoder.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_probe_and_pretraining_reject_bad_input(sim, pretrained):
    from neurodec.neural import evaluate_ieeg_probe, pretrain_masked_latent

    with pytest.raises(ValueError, match="exactly 2 classes"):
        evaluate_ieeg_probe(pretrained.encoder, sim, np.arange(sim.n_trials) % 3, verbose=False)
    with pytest.raises(ValueError, match="no column 'task'"):
        evaluate_ieeg_probe(pretrained.encoder, sim, "task", verbose=False)
    with pytest.raises(ValueError, match="'positive' class 'noise'"):
        evaluate_ieeg_probe(pretrained.encoder, sim, "condition", positive="noise", verbose=False)
    with pytest.raises(ValueError, match=r"epochs of shape \(n_samples, n_channels, n_times\)"):
        pretrain_masked_latent(pretrained.encoder, sim.data[0], verbose=False)
    with pytest.raises(ValueError, match="'batch_size' parameter must be an integer >= 2"):
        pretrain_masked_latent(pretrained.encoder, sim.data, batch_size=1, verbose=False)
    with pytest.raises(ValueError, match="last batch of 10 would hold 1 epoch"):
        pretrain_masked_latent(pretrained.encoder, sim.data, val_data=sim.data[:11], batch_size=10, verbose=False)


def test_interrupted_pretraining_resumes_exactly(sim, tmp_path):
    # The teacher is checkpointed with the student and masks come from the checkpointed RNG,
    # so one epoch + a resumed second epoch equals two epochs in one go.
    from neurodec.neural import pretrain_masked_latent, seed_everything

    data = sim.data[:24, :8, :64]
    units = sim.units.iloc[:8]

    def run(n_epochs, folder, resume=False):
        seed_everything(0)
        layout = spatial_layout(units, "region")
        encoder = IEEGTransformer(layout, **SMALL)
        return pretrain_masked_latent(encoder, data, n_epochs=n_epochs, batch_size=8, checkpoint_dir=folder,
                                      resume=resume, device="cpu", verbose=False)

    whole = run(2, tmp_path / "whole")
    run(1, tmp_path / "split")
    resumed = run(2, tmp_path / "split", resume=True)
    np.testing.assert_array_equal(resumed.train_loss, whole.train_loss)
    for (key, a), b in zip(whole.encoder.state_dict().items(), resumed.encoder.state_dict().values()):
        assert torch.equal(a, b), key
    teacher = resumed.training.model.teacher.state_dict()
    for key, value in whole.training.model.teacher.state_dict().items():
        assert torch.equal(value, teacher[key]), key
