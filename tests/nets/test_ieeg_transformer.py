"""The iEEG spatiotemporal transformer: spatial tokens, masking, pretraining, probe."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from _ieeg_sim import simulate_speech_music
from float32_tolerance import float32_atol
from neurodec.nets.ieeg_tokens import spatial_layout
from neurodec.nets.ieeg_transformer import IEEGTransformer, make_token_mask

SMALL = dict(patch_len=16, d_model=32, n_heads=4, n_layers=1, dropout=0.0)


@pytest.fixture(scope="module")
def sim():
    return simulate_speech_music(np.random.default_rng(0), n_trials=120, effect=1.0, test_fraction=0.5)


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
