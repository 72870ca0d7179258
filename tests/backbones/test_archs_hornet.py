"""HorNet: shapes, published parameter counts, the authors' checkpoint names, registry."""

from __future__ import annotations

import pytest
import torch
from _archs_checks import (
    assert_loads_release,
    assert_specs_build,
    count_params,
    fill_deterministic_,
    hooked_outputs,
    randomize_,
    reference_input,
    reference_logits,
    small_hornet,
    use_small_builder,
)

from neurodec.backbones import get_backbone_spec, list_backbones, load
from neurodec.backbones.archs import hornet
from neurodec.backbones.archs._hornet_model import GlobalLocalFilter

# Millions of parameters. T/S/B: counted on the official models by mmpretrain's model
# zoo (configs/hornet/README.md); L: the authors' README (rounded to 1M), with their
# ImageNet-22k classifier.
PUBLISHED = {
    "hornet_tiny_7x7": (22.41, 0.01),
    "hornet_tiny_gf": (22.99, 0.01),
    "hornet_small_7x7": (49.53, 0.01),
    "hornet_small_gf": (50.40, 0.01),
    "hornet_base_7x7": (87.26, 0.01),
    "hornet_base_gf": (88.42, 0.01),
    "hornet_large_7x7": (209, 0.5),
    "hornet_large_gf": (211, 0.5),
    "hornet_large_gf_img384": (216, 0.5),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_paper(name):
    published, tolerance = PUBLISHED[name]
    assert abs(count_params(getattr(hornet, name)) / 1e6 - published) < tolerance


@pytest.mark.parametrize("name", ["hornet_tiny_7x7", "hornet_tiny_gf"])
def test_stages_have_paper_widths_and_strides(name):
    spec = get_backbone_spec(name)
    model = getattr(hornet, name)(num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    outputs = hooked_outputs(model, spec.layers, x)
    shapes = [tuple(outputs[layer].shape) for layer in spec.layers]
    assert shapes == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)]
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), outputs["stages.3"])
        assert model(x).shape == (2, 10)


def test_gnconv_orders_and_global_filter_shapes():
    with torch.device("meta"):
        model = hornet.hornet_tiny_gf()
    assert [model.stages[i][0].gnconv.order for i in range(4)] == [2, 3, 4, 5]
    assert model.stages[2][0].gnconv.dims == [32, 64, 128, 256]
    # Stage 3 gates: 32+64+128+256 = 480 channels, half of them through a 14x8 spectral filter.
    assert model.stages[2][0].gnconv.dwconv.complex_weight.shape == (240, 14, 8, 2)
    assert model.stages[3][0].gnconv.dwconv.complex_weight.shape == (496, 7, 4, 2)
    assert isinstance(model.stages[1][0].gnconv.dwconv, torch.nn.Conv2d)


def test_global_filter_runs_at_its_trained_and_other_sizes():
    block = GlobalLocalFilter(8, h=4, w=3).eval()
    for size in (4, 6):  # rfft of a 4x4 map is 4x3: the stored filter; 6x6 resamples it
        x = torch.randn(1, 8, size, size)
        assert block(x).shape == x.shape


def test_global_filter_halves_are_interleaved():
    block = GlobalLocalFilter(4, h=2, w=2).eval()
    with torch.no_grad():
        block.dw.weight.zero_()  # the local half becomes exactly zero (before post_norm)
        block.post_norm.weight.fill_(1.0)
    captured = []
    block.post_norm.register_forward_hook(lambda m, i, o: captured.append(i[0]))
    block(torch.randn(1, 4, 2, 2))
    assert torch.all(captured[0][:, 0::2] == 0) and torch.all(captured[0][:, 1::2] != 0)


def test_matches_authors_code():
    """Same weights, same logits as the authors' hornet.py, at the filters' size (64) and resampled (96)."""
    model = fill_deterministic_(small_hornet())
    for size in ("64", "96"):
        with torch.no_grad():
            logits = model(reference_input(int(size)))
        torch.testing.assert_close(logits, reference_logits("hornet", size), rtol=1e-4, atol=1e-5)


def test_authors_parameter_names():
    with torch.device("meta"):
        names = set(hornet.hornet_tiny_gf().state_dict())
    # Names as the authors' hornet.py defines them.
    for key in [
        "downsample_layers.0.0.weight",
        "downsample_layers.3.1.bias",
        "stages.0.0.gamma1",
        "stages.1.2.gnconv.dwconv.weight",
        "stages.2.17.gnconv.dwconv.complex_weight",
        "stages.2.0.gnconv.dwconv.dw.weight",
        "stages.3.1.gnconv.dwconv.pre_norm.bias",
        "stages.3.1.gnconv.pws.3.weight",
        "stages.3.1.norm2.weight",
        "stages.3.1.pwconv2.bias",
        "norm.weight",
        "head.weight",
    ]:
        assert key in names, key
    assert len(names) == 640  # 16 downsampling + 620 in blocks + norm + head


def test_loads_checkpoint_in_authors_format(tmp_path, monkeypatch):
    # The authors' ConvNeXt-style main.py saves {"model": state_dict, "epoch": ...} (+ "model_ema").
    use_small_builder(monkeypatch, "hornet_tiny_gf", small_hornet)
    wrap = lambda state: {"model": state, "epoch": 299}  # noqa: E731
    assert_loads_release("hornet_tiny_gf", torch.randn(1, 3, 64, 64), tmp_path, wrap=wrap)


def test_loader_prefers_the_trained_weights_to_their_ema_copy(tmp_path, monkeypatch):
    use_small_builder(monkeypatch, "hornet_tiny_gf", small_hornet)
    x = torch.randn(1, 3, 64, 64)
    trained, ema = randomize_(small_hornet(), seed=0), randomize_(small_hornet(), seed=1)
    with torch.no_grad():
        expected = {"trained": trained(x), "ema": ema(x)}
    assert not torch.allclose(expected["trained"], expected["ema"])
    for checkpoint, which in [
        ({"model": trained.state_dict(), "model_ema": ema.state_dict()}, "trained"),
        ({"state_dict_ema": ema.state_dict(), "state_dict": trained.state_dict()}, "trained"),  # timm's train.py
        ({"model_ema": ema.state_dict(), "epoch": 299}, "ema"),
    ]:
        path = tmp_path / "checkpoint.pth"
        torch.save(checkpoint, path)
        with torch.no_grad(), pytest.warns(UserWarning, match="without preprocessing metadata"):
            got = load("hornet_tiny_gf", weights=path, device="cpu").root(x)
        torch.testing.assert_close(got, expected[which], rtol=0, atol=0)


def test_loader_rejects_a_foreign_checkpoint(tmp_path, monkeypatch):
    use_small_builder(monkeypatch, "hornet_tiny_7x7", small_hornet)
    path = tmp_path / "foreign.pth"
    torch.save({"model": {"fc.weight": torch.zeros(1)}, "epoch": 3}, path)
    with pytest.raises(ValueError, match=r"foreign.pth does not match the HorNet architecture.*fc.weight.*No name is shared"):
        load("hornet_tiny_7x7", weights=path, device="cpu")


def test_registry_specs():
    assert set(PUBLISHED) <= set(list_backbones("hornet_*"))
    assert_specs_build(list_backbones("hornet_*"))
    spec = get_backbone_spec("hornet_tiny_7x7")
    assert spec.source == "neurodec"
    assert spec.checkpoint_filter is None  # the loader unwraps {"model": ...} itself
    assert spec.model_id == "neurodec.backbones.archs.hornet:hornet_tiny_7x7"
    assert spec.pretrained.startswith("https://cloud.tsinghua.edu.cn/f/")
    assert spec.layers == ("stages.0", "stages.1", "stages.2", "stages.3")
    assert get_backbone_spec("hornet_large_gf_img384").input_size == 384
    with torch.device("meta"):
        assert hornet.hornet_large_7x7().head.out_features == 10450
