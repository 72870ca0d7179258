"""TransXNet: per-sample dynamic convolution, shapes, parameter counts, checkpoints, specs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _archs_checks import assert_loads_release, assert_specs_build, count_params, hooked_outputs, perturb_, resolve

from neurodec.backbones import get_backbone_spec, list_backbones
from neurodec.backbones.archs import transxnet
from neurodec.backbones.archs._transxnet_model import dynamic_depthwise_conv


def test_dynamic_depthwise_conv_matches_per_sample_convolutions() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 6, 5, generator=gen, dtype=torch.float64)
    weight = torch.randn(3, 4, 7, 7, generator=gen, dtype=torch.float64)
    bias = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    expected = torch.cat(
        [F.conv2d(x[i : i + 1], weight[i][:, None], bias[i], padding=3, groups=4) for i in range(3)]
    )
    torch.testing.assert_close(dynamic_depthwise_conv(x, weight, bias), expected)


def test_transxnet_t_stages_have_paper_widths_and_strides() -> None:
    torch.manual_seed(0)
    model = transxnet.transxnet_t(drop_path_rate=0.1).eval()  # drop path must be inert in eval mode
    x = torch.randn(2, 3, 64, 64)
    spec = get_backbone_spec("transxnet_t")
    outputs = hooked_outputs(model, spec.layers, x)
    # strides 4, 8, 16, 32; widths 48, 96, 224, 448 (TransXNet-T)
    assert [tuple(outputs[name].shape) for name in spec.layers] == [
        (2, 48, 16, 16), (2, 96, 8, 8), (2, 224, 4, 4), (2, 448, 2, 2),
    ]  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), outputs["network.6"])
        assert model(x).shape == (2, 1000)


@pytest.mark.parametrize(("builder", "millions"), [
    (transxnet.transxnet_t, 12.8), (transxnet.transxnet_s, 26.9), (transxnet.transxnet_b, 48.0),
])  # fmt: skip
def test_parameter_counts_match_the_readme(builder, millions: float) -> None:
    assert count_params(builder) == pytest.approx(millions * 1e6, rel=0.005)


def test_checkpoint_round_trip(tmp_path) -> None:
    # timm's train.py (used for the release) saves {"state_dict": ..., "epoch": ..., ...}.
    wrap = lambda state: {"state_dict": state, "epoch": 299, "optimizer": {}}  # noqa: E731
    assert_loads_release("transxnet_t", torch.randn(2, 3, 32, 32), tmp_path, wrap=wrap, randomize=perturb_)


def test_drop_path_rate_is_validated() -> None:
    with pytest.raises(ValueError, match="'drop_path_rate' of TransXNet"):
        transxnet.transxnet_t(drop_path_rate=1.5)


def test_registered_specs() -> None:
    assert {"transxnet_t", "transxnet_s", "transxnet_b"} <= set(list_backbones("transxnet*"))
    spec = get_backbone_spec("transxnet_b")
    assert resolve(spec.model_id) is transxnet.transxnet_b
    assert spec.pretrained == "https://github.com/LMMMEng/TransXNet/releases/download/v1.0/transx-b.pth.tar"
    assert spec.crop_pct == 0.95
    assert spec.checkpoint_filter is None  # the loader unwraps {"state_dict": ...} itself
    assert "2310.19380" in spec.citation and spec.license == "Apache-2.0"


@pytest.mark.parametrize("name", list_backbones("transxnet*"))
def test_every_variant_builds_with_its_spec_layers(name: str) -> None:
    assert_specs_build([name])
