"""LSNet: plain-torch small-kernel aggregation, shapes, parameter counts, checkpoints, specs."""

from __future__ import annotations

import pytest
import torch
from _archs_checks import assert_loads_release, assert_specs_build, count_params, hooked_outputs, perturb_, resolve

from neurodec.backbones import get_backbone_spec, list_backbones, load
from neurodec.backbones.archs import lsnet
from neurodec.backbones.archs._dynamic_conv import small_kernel_aggregate


def _naive_ska(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The Triton kernel's arithmetic, one output element at a time."""
    n, c, h, w = x.shape
    groups, k = weight.shape[1], int(weight.shape[2] ** 0.5)
    pad = (k - 1) // 2
    out = torch.zeros_like(x)
    for b in range(n):
        for ch in range(c):
            for i in range(h):
                for j in range(w):
                    for ki in range(k):
                        for kj in range(k):
                            y, z = i - pad + ki, j - pad + kj
                            if 0 <= y < h and 0 <= z < w:
                                out[b, ch, i, j] += x[b, ch, y, z] * weight[b, ch % groups, ki * k + kj, i, j]
    return out


@pytest.mark.parametrize("k", [3, 5])
def test_small_kernel_aggregate_matches_naive_loop(k: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 4, 3, generator=gen, dtype=torch.float64)
    weight = torch.randn(2, 2, k * k, 4, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(small_kernel_aggregate(x, weight), _naive_ska(x, weight))


def test_small_kernel_aggregate_rejects_mismatched_groups() -> None:
    with pytest.raises(ValueError, match="multiple of G"):
        small_kernel_aggregate(torch.zeros(1, 5, 4, 4), torch.zeros(1, 2, 9, 4, 4))


def test_lsnet_t_stages_have_paper_widths_and_strides() -> None:
    torch.manual_seed(0)
    model = lsnet.lsnet_t(img_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    spec = get_backbone_spec("lsnet_t")
    outputs = hooked_outputs(model, spec.layers, x)
    shapes = [tuple(outputs[name].shape) for name in spec.layers]
    # strides 8, 16, 32, 64; widths 64, 128, 256, 384 (LSNet-T)
    assert shapes == [(2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2), (2, 384, 1, 1)]
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), outputs["blocks4"])
        assert model(x).shape == (2, 1000)


def test_attention_refuses_a_resolution_it_was_not_built_for() -> None:
    model = lsnet.lsnet_t(img_size=64).eval()
    with pytest.raises(ValueError, match="img_size"):
        model(torch.zeros(1, 3, 128, 128))


def test_parameter_counts_match_the_release() -> None:
    # Exact counts printed by the authors' training logs (logs/lsnet_{t,s}.log) ...
    assert count_params(lsnet.lsnet_t) == 11_409_832
    assert count_params(lsnet.lsnet_s) == 16_146_304
    assert count_params(lsnet.lsnet_s_distill) == 16_596_200
    # ... and the README's 23.2 M for LSNet-B.
    assert count_params(lsnet.lsnet_b) == pytest.approx(23.2e6, rel=0.01)


# The release's main.py (DeiT-style) saves {"model": state_dict, "optimizer": ..., "epoch": ...}.
@pytest.mark.parametrize("name", ["lsnet_t", "lsnet_t_distill"])
def test_checkpoint_round_trip(name: str, tmp_path) -> None:
    wrap = lambda state: {"model": state, "epoch": 299, "optimizer": {}}  # noqa: E731
    assert_loads_release(name, torch.randn(2, 3, 64, 64), tmp_path, wrap=wrap, randomize=perturb_, img_size=64)


def test_loader_rejects_foreign_checkpoint(tmp_path) -> None:
    path = tmp_path / "foreign.pth"
    torch.save({"model": {"encoder.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="does not match the LSNet architecture.*No name is shared"):
        load("lsnet_t", weights=path, device="cpu", img_size=64)


def test_registered_specs() -> None:
    assert {f"lsnet_{s}{d}" for s in "tsb" for d in ("", "_distill")} <= set(list_backbones("lsnet*"))
    spec = get_backbone_spec("lsnet_b_distill")
    assert spec.source == "neurodec"
    assert resolve(spec.model_id) is lsnet.lsnet_b_distill
    assert spec.pretrained == "https://huggingface.co/jameslahm/lsnet/resolve/main/lsnet_b_distill.pth"
    assert spec.crop_pct == 0.9 and spec.input_size == 224
    assert spec.checkpoint_filter is None  # the loader unwraps {"model": ...} itself
    assert "2503.23135" in spec.citation


@pytest.mark.parametrize("name", list_backbones("lsnet*"))
def test_every_variant_builds_with_its_spec_layers(name: str) -> None:
    assert_specs_build([name])


def test_small_kernel_aggregate_gradients() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1, 2, 9, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(small_kernel_aggregate, (x, weight))
