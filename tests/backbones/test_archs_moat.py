"""MOAT: exact published parameter counts, TensorFlow semantics, TF checkpoint conversion, registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _archs_checks import (
    assert_specs_build,
    assert_state_dict_round_trip,
    count_params,
    fill_deterministic_,
    hooked_outputs,
    randomize_,
    reference_input,
    reference_logits,
    resolve,
    small_moat,
    to_tf_variables,
)

from neurodec.backbones import get_backbone_spec, list_backbones
from neurodec.backbones.archs import _moat_model, moat
from neurodec.backbones.archs._moat_tf import convert_tf_checkpoint

# Exact parameter counts (with a 1000-class head) asserted by the authors' tests,
# deeplab2 model/pixel_encoder/moat_test.py: (with, without position embedding).
PUBLISHED = {
    "moat_0": (27_846_892, 27_777_544),
    "moat_1": (41_598_448, 41_467_864),
    "moat_2": (73_422_408, 73_248_296),
    "moat_3": (189_958_040, 189_536_280),
    "moat_4": (483_214_184, 482_539_368),
    "tiny_moat_0": (3_355_348, 3_332_232),
    "tiny_moat_1": (5_122_895, 5_094_000),
    "tiny_moat_2": (9_772_741, 9_732_288),
    "tiny_moat_3": (19_534_390, 19_476_600),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_authors_exactly(name):
    builder = getattr(moat, name)
    with_pe, without_pe = PUBLISHED[name]
    assert count_params(builder) == with_pe
    assert count_params(builder, position_embedding=False) == without_pe


def test_stages_have_paper_widths_and_strides():
    spec = get_backbone_spec("tiny_moat_0")
    torch.manual_seed(0)
    model = moat.tiny_moat_0(num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    layers = ("stem", *spec.layers)
    outputs = hooked_outputs(model, layers, x)
    shapes = [tuple(outputs[layer].shape) for layer in layers]
    assert shapes == [(2, 32, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2)]
    kinds = [type(stage[0]).__name__ for stage in model.stages]
    assert kinds == ["MBConvBlock", "MBConvBlock", "MOATBlock", "MOATBlock"]
    with torch.no_grad():
        assert model(x).shape == (2, 7)


def test_same_padding_follows_tensorflow():
    # TF pads a strided 3x3 "same" convolution only at the bottom/right of an even input.
    conv = _moat_model._conv_same(1, 1, 3, stride=2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        out = conv(torch.ones(1, 1, 4, 4))[0, 0]
    assert out.tolist() == [[9.0, 6.0], [6.0, 4.0]]
    # ... and its "same" average pooling leaves the padding out of the mean.
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    pooled = _moat_model._avg_pool_same(x, 3, 2)[0, 0]
    torch.testing.assert_close(pooled[0, 0], x[0, 0, :3, :3].mean())
    torch.testing.assert_close(pooled[1, 1], x[0, 0, 2:, 2:].mean())


def test_relative_position_bias_uses_key_minus_query():
    attention = _moat_model.RelativeAttention(32, head_size=32, position_embedding_size=3)
    with torch.no_grad():
        attention.relative_position_embedding.copy_(torch.arange(25.0).reshape(1, 5, 5))
    bias = attention._position_bias(3, 3)  # queries/keys indexed row * 3 + col
    table = attention.relative_position_embedding[0]
    assert bias[0, 0, 3] == table[1 + 2, 0 + 2]  # query (0, 0), key (1, 0)
    assert bias[0, 4, 2] == table[-1 + 2, 1 + 2]  # query (1, 1), key (0, 2)
    assert attention._position_bias(4, 4).shape == (1, 16, 16)  # the table is resized for other windows


def test_windowed_attention_tiles_the_map():
    torch.manual_seed(0)
    block = randomize_(_moat_model.MOATBlock(8, 32, stride=1, position_embedding_size=2))
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        global_out = block(x)
        block.window_size = (4, 4)  # one window covering the map: the same as global attention
        torch.testing.assert_close(block(x), global_out)
        block.window_size = (2, 2)
        assert not torch.allclose(block(x), global_out)
        block.window_size = (3, 3)
        with pytest.raises(ValueError, match=r"windows \(3, 3\) must tile its feature map; got \(4, 4\)"):
            block(x)


def test_matches_authors_tensorflow_code():
    """Same weights (converted from deeplab2's names and layouts), same logits as TensorFlow."""
    model = small_moat()
    converted = convert_tf_checkpoint(to_tf_variables(fill_deterministic_(small_moat())), model)
    model.load_state_dict(converted, strict=True)
    with torch.no_grad():
        logits = model.eval()(reference_input(64))
    torch.testing.assert_close(logits, reference_logits("moat", "64"), rtol=1e-4, atol=1e-5)


def test_batch_norm_uses_keras_epsilon():
    model = moat.tiny_moat_0()
    assert {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-3}


def test_state_dict_round_trip(tmp_path):
    assert_state_dict_round_trip(lambda: moat.tiny_moat_0(num_classes=5), torch.randn(1, 3, 64, 64), tmp_path)


def test_converts_tensorflow_checkpoint():
    torch.manual_seed(0)
    source = randomize_(moat.tiny_moat_0(num_classes=5))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = source(x)
    tf_vars = to_tf_variables(source)
    # Names and shapes as deeplab2's Keras layers create them.
    for name, shape in {
        "moat/stem/conv_0/kernel": (3, 3, 3, 32),
        "moat/stem/norm_0/moving_variance": (32,),
        "moat/block_00_00/pre_norm/gamma": (32,),
        "moat/block_00_00/expand_conv/kernel": (1, 1, 32, 128),
        "moat/block_00_00/depthwise_conv/depthwise_kernel": (3, 3, 128, 1),
        "moat/block_00_00/se/reduce_conv2d/kernel": (1, 1, 128, 8),
        "moat/block_01_00/shortcut_conv/bias": (64,),
        "moat/block_02_06/attention_norm/beta": (128,),
        "moat/block_02_06/attention/q/weight": (128, 4, 32),
        "moat/block_02_06/attention/q/bias": (4, 32),
        "moat/block_02_06/attention/o/weight": (4, 32, 128),
        "moat/block_02_06/attention/relative_position_embedding": (4, 27, 27),
        "moat/block_03_01/attention/relative_position_embedding": (8, 13, 13),
        "moat/block_03_01/shrink_conv/kernel": (1, 1, 1024, 256),
        "moat/final_layer_norm/gamma": (256,),
        "moat/logits_head/kernel": (1, 1, 256, 5),
    }.items():
        assert tf_vars[name].shape == shape, name
    # The authors' checkpoints also hold moving averages and step counters, and their
    # stem variables may lack the "moat/stem/" scope.
    tf_vars["global_step"] = np.array(1000)
    tf_vars["moat/final_layer_norm/gamma/ExponentialMovingAverage"] = np.ones(256, dtype=np.float32)
    tf_vars["conv_0/kernel"] = tf_vars.pop("moat/stem/conv_0/kernel")
    spec = get_backbone_spec("tiny_moat_0")
    model = moat.tiny_moat_0(num_classes=5)
    model.load_state_dict(resolve(spec.checkpoint_filter)(tf_vars, model), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), expected)
    del tf_vars["moat/logits_head/kernel"]
    with pytest.raises(ValueError, match=r"lacks 1 variables .*moat/logits_head/kernel.*num_classes=0"):
        resolve(spec.checkpoint_filter)(tf_vars, model)


def test_registry_specs():
    assert set(PUBLISHED) <= set(list_backbones("*moat_*"))
    assert_specs_build(list_backbones("*moat_*"))
    spec = get_backbone_spec("moat_2")
    assert spec.model_id == "neurodec.backbones.archs.moat:moat_2"
    assert resolve(spec.checkpoint_filter) is convert_tf_checkpoint
    assert spec.input_size == 384 and spec.mean == (0.5, 0.5, 0.5)
    assert spec.pretrained.endswith("moat2_imagenet_22k_and_1k_384_w_position_embedding.tar.gz")
    assert get_backbone_spec("tiny_moat_0").std == (0.229, 0.224, 0.225)
