"""RepMLPNet: Locality Injection equivalence, shapes, published parameter counts, checkpoints."""

from __future__ import annotations

import copy

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
    small_repmlpnet,
    use_small_builder,
)

from neurodec.backbones import get_backbone_spec, list_backbones
from neurodec.backbones.archs import repmlp
from neurodec.backbones.archs._repmlp_model import RepMLPBlock

# Millions of parameters of the training-time models, from the authors' README.
PUBLISHED = {
    "repmlpnet_t224": 38.3,
    "repmlpnet_b224": 68.2,
    "repmlpnet_t256": 58.7,
    "repmlpnet_b256": 96.5,
    "repmlpnet_d256": 86.9,
    "repmlpnet_l256": 117.7,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_paper(name):
    assert abs(count_params(getattr(repmlp, name)) / 1e6 - PUBLISHED[name]) < 0.1


def test_t224_stages_have_paper_widths_and_strides():
    spec = get_backbone_spec("repmlpnet_t224")
    torch.manual_seed(0)
    model = repmlp.repmlpnet_t224().eval()
    x = torch.randn(1, 3, 224, 224)
    outputs = hooked_outputs(model, spec.layers, x)
    assert [tuple(outputs[layer].shape) for layer in spec.layers] == [(1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 512, 7, 7)]
    with torch.no_grad():
        assert model(x).shape == (1, 1000)
    with pytest.raises(ValueError, match=r"multiples of its partition size \(56, 56\); got \(16, 16\)"):
        model(torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("reparam_conv_k", [(1, 3), (3, 5), ()])
def test_locality_injection_preserves_outputs(reparam_conv_k):
    torch.manual_seed(0)
    model = randomize_(small_repmlpnet(reparam_conv_k=reparam_conv_k), seed=3)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        if reparam_conv_k:  # the branches matter: without them the output changes
            stripped = copy.deepcopy(model)
            for block in (m for m in stripped.modules() if isinstance(m, RepMLPBlock)):
                block.reparam_conv_k = ()
            assert not torch.allclose(stripped(x), before, atol=1e-3)
        assert model.locality_injection() is model
        after = model(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    names = list(model.state_dict())
    assert not any("repconv" in n or "fc3_bn" in n for n in names)
    assert "stages.0.0.repmlp_block.fc3.bias" in names


def test_matches_authors_code_before_and_after_locality_injection():
    model = fill_deterministic_(small_repmlpnet())
    x = reference_input(64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_logits("repmlpnet", "train"), rtol=1e-4, atol=1e-5)
        model.locality_injection()
        torch.testing.assert_close(model(x), reference_logits("repmlpnet", "deploy"), rtol=1e-4, atol=1e-5)


def test_merged_weights_load_into_deploy_model():
    torch.manual_seed(0)
    model = randomize_(small_repmlpnet(), seed=1)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    deploy = small_repmlpnet(deploy=True).eval()
    deploy.load_state_dict(model.locality_injection().state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), expected, rtol=1e-4, atol=1e-4)


def test_equivalent_fc_of_a_single_conv_branch_is_the_convolution():
    """Planted truth: with fc3 zeroed and identity BNs, the merged FC applies the 3x3 kernel."""
    block = RepMLPBlock(2, h=3, w=3, reparam_conv_k=(3,), num_sharesets=2, globalperceptron_reduce=1).eval()
    kernel = torch.randn(2, 1, 3, 3)
    block.fc3_bn.eps = block.repconv3.bn.eps = 0.0
    with torch.no_grad():
        block.fc3.weight.zero_()
        block.repconv3.conv.weight.copy_(kernel)
    weight, bias = block.get_equivalent_fc3()
    x = torch.randn(2, 3, 3)
    expected = torch.nn.functional.conv2d(x[None], kernel, padding=1, groups=2)[0]
    merged = (weight.reshape(2, 9, 9) @ x.reshape(2, 9, 1)).reshape(2, 3, 3) + bias.reshape(2, 3, 3)
    torch.testing.assert_close(merged, expected)
    assert torch.all(bias == 0)


def test_authors_parameter_names():
    with torch.device("meta"):
        state = repmlp.repmlpnet_t224().state_dict()
    for key in [
        "conv_embedding.conv.weight",
        "conv_embedding.bn.running_var",
        "stages.0.0.prebn1.weight",
        "stages.0.0.repmlp_block.gp.fc1.weight",
        "stages.0.0.repmlp_block.gp.fc2.bias",
        "stages.0.0.repmlp_block.fc3_bn.running_mean",
        "stages.2.5.repmlp_block.repconv1.conv.weight",
        "stages.2.5.repmlp_block.repconv3.bn.num_batches_tracked",
        "stages.3.1.ffn_block.ffn_fc1.conv.weight",
        "stages.3.1.ffn_block.ffn_fc2.bn.bias",
        "embeds.2.bn.weight",
        "head_norm.running_var",
        "head.bias",
    ]:
        assert key in state, key
    # fc3 is grouped by share sets: (S * h * w, h * w) with S = 1 at 56 x 56 and S = 128 at 7 x 7.
    assert state["stages.0.0.repmlp_block.fc3.weight"].shape == (3136, 3136, 1, 1)
    assert state["stages.3.0.repmlp_block.fc3.weight"].shape == (128 * 49, 49, 1, 1)
    assert "stages.0.0.repmlp_block.fc3.bias" not in state


def test_loads_checkpoint_in_authors_format(tmp_path, monkeypatch):
    # The README's weights are plain name -> tensor dicts (one of the files written);
    # the training script nests them under "model".
    use_small_builder(monkeypatch, "repmlpnet_t224", small_repmlpnet)
    wrap = lambda state: {"model": state, "max_accuracy": 80.8}  # noqa: E731
    assert_loads_release("repmlpnet_t224", torch.randn(1, 3, 64, 64), tmp_path, wrap=wrap)


def test_registry_specs():
    assert set(PUBLISHED) <= set(list_backbones("repmlpnet_*"))
    assert_specs_build(list_backbones("repmlpnet_*"))
    spec = get_backbone_spec("repmlpnet_b256")
    assert spec.model_id == "neurodec.backbones.archs.repmlp:repmlpnet_b256"
    assert spec.checkpoint_filter is None  # the loader unwraps {"model": ...} itself
    assert spec.input_size == 256 and spec.crop_pct == 1.0
    assert spec.pretrained.startswith("https://drive.google.com/file/d/")
    assert spec.layers == ("stages.0", "stages.1", "stages.2", "stages.3")
