"""OverLoCK: plain-torch neighbourhood aggregation (NATTEN semantics), shapes, counts, checkpoints, specs."""

from __future__ import annotations

import pytest
import torch
from _archs_checks import assert_loads_release, assert_specs_build, count_params, hooked_outputs, perturb_, resolve

from neurodec.backbones import get_backbone_spec, list_backbones
from neurodec.backbones.archs import overlock
from neurodec.backbones.archs._dynamic_conv import neighborhood_aggregate, neighborhood_rpb_index, small_kernel_aggregate


def _natten_window_start(i: int, length: int, k: int) -> int:
    """NATTEN's ``get_window_start`` (dilation 1), as written in its CPU kernels."""
    nb = k // 2
    return max(i - nb, 0) + ((length - i - nb - 1) if i + nb >= length else 0)


def _naive_na2d_av(attn: torch.Tensor, value: torch.Tensor, k: int) -> torch.Tensor:
    b, g, h, w, c = value.shape
    out = torch.zeros_like(value)
    for i in range(h):
        for j in range(w):
            si, sj = _natten_window_start(i, h, k), _natten_window_start(j, w, k)
            for ki in range(k):
                for kj in range(k):
                    out[:, :, i, j] += attn[:, :, i, j, ki * k + kj, None] * value[:, :, si + ki, sj + kj]
    return out


@pytest.mark.parametrize(("h", "w", "k"), [(5, 7, 3), (6, 5, 5)])
def test_neighborhood_aggregate_matches_natten_semantics(h: int, w: int, k: int) -> None:
    gen = torch.Generator().manual_seed(0)
    attn = torch.randn(2, 3, h, w, k * k, generator=gen, dtype=torch.float64)
    value = torch.randn(2, 3, h, w, 4, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(neighborhood_aggregate(attn, value, k), _naive_na2d_av(attn, value, k))


@pytest.mark.parametrize(("length", "k"), [(9, 5), (5, 5), (14, 13)])
def test_rpb_index_matches_the_release_construction(length: int, k: int) -> None:
    # The release (after NATTEN's get_pb_start) repeats the middle base index and reverses positions.
    repeats = torch.ones(k, dtype=torch.long)
    repeats[k // 2] = length - (k - 1)
    base = torch.arange(k).repeat_interleave(repeats).flip(0)
    expected = base[:, None] + torch.arange(k)
    assert torch.equal(neighborhood_rpb_index(length, k), expected)


def test_neighborhood_aggregate_rejects_a_map_smaller_than_the_window() -> None:
    with pytest.raises(ValueError, match="at least 5x5"):
        neighborhood_aggregate(torch.zeros(1, 1, 4, 6, 25), torch.zeros(1, 1, 4, 6, 2), 5)


@pytest.fixture(scope="module")
def xt() -> torch.nn.Module:
    torch.manual_seed(0)
    return perturb_(overlock.overlock_xt(drop_path_rate=0.1))  # eval mode: drop path inert


def test_overlock_xt_stages_have_paper_widths_and_strides(xt: torch.nn.Module) -> None:
    x = torch.randn(1, 3, 64, 64)
    spec = get_backbone_spec("overlock_xt")
    outputs = hooked_outputs(xt, spec.layers, x)
    # Base-Net 56/112/256 at strides 4/8/16, Overview 336 at 32, Focus-Net carries 336 // 4 = 84
    # context channels: 256 + 84 at stride 16, 336 + 84 at stride 32.
    assert [tuple(outputs[name].shape) for name in spec.layers] == [
        (1, 56, 16, 16), (1, 112, 8, 8), (1, 256, 4, 4), (1, 336, 2, 2), (1, 340, 4, 4), (1, 420, 2, 2),
    ]  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(xt.forward_features(x), outputs["sub_blocks4"])
        assert xt(x).shape == (1, 1000)


def test_non_square_input_runs_through_the_resize_path(xt: torch.nn.Module) -> None:
    with torch.no_grad():
        assert xt.forward_features(torch.randn(1, 3, 64, 96)).shape == (1, 420, 2, 3)


def test_reparameterize_keeps_outputs_and_gives_the_reparam_release_layout(xt: torch.nn.Module) -> None:
    x = torch.randn(1, 3, 64, 64)
    merged = overlock.overlock_xt()
    merged.load_state_dict(xt.state_dict())
    merged.eval().reparameterize()
    deployed = overlock.overlock_xt_reparam()
    deployed.load_state_dict(merged.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(deployed.eval()(x), xt(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("size", "millions"), [("xt", 16), ("t", 33), ("s", 56), ("b", 95)])
def test_parameter_counts_match_the_readme(size: str, millions: int) -> None:
    # The README's counts (whole millions) are those of the deployed network:
    # merged large kernels, without the training-only auxiliary head.
    with torch.device("meta"):
        model = getattr(overlock, f"overlock_{size}_reparam")()
    n_aux = sum(p.numel() for p in model.aux_head.parameters())
    assert round((sum(p.numel() for p in model.parameters()) - n_aux) / 1e6) == millions
    # Training form: the dilated branches add about 3% (XT: 16.97 M without the auxiliary head).
    assert count_params(getattr(overlock, f"overlock_{size}")) == pytest.approx(
        sum(p.numel() for p in model.parameters()), rel=0.04
    )


def test_checkpoint_round_trip(tmp_path) -> None:
    # timm's train.py (used for the release) saves {"state_dict": ..., "epoch": ..., ...}.
    wrap = lambda state: {"state_dict": state, "epoch": 299, "optimizer": {}}  # noqa: E731
    assert_loads_release("overlock_xt", torch.randn(1, 3, 32, 32), tmp_path, wrap=wrap, randomize=perturb_)


def test_registered_specs() -> None:
    names = {f"overlock_{s}{r}" for s in ("xt", "t", "s", "b") for r in ("", "_reparam")}
    assert names <= set(list_backbones("overlock*"))
    spec = get_backbone_spec("overlock_t_reparam")
    assert resolve(spec.model_id) is overlock.overlock_t_reparam
    assert spec.pretrained == "https://github.com/LMMMEng/OverLoCK/releases/download/v1/overlock_t_in1k_224_reparam.pth"
    assert spec.crop_pct == 0.95
    assert spec.checkpoint_filter is None  # the loader unwraps {"state_dict": ...} itself
    assert "2502.20087" in spec.citation


@pytest.mark.parametrize("name", list_backbones("overlock*"))
def test_every_variant_builds_with_its_spec_layers(name: str) -> None:
    assert_specs_build([name])


def test_neighborhood_aggregate_gradients() -> None:
    gen = torch.Generator().manual_seed(1)
    attn = torch.randn(1, 2, 4, 3, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    value = torch.randn(1, 2, 4, 3, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, v: neighborhood_aggregate(a, v, 3), (attn, value))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_dynamic_ops_agree_on_cpu_and_gpu() -> None:
    gen = torch.Generator().manual_seed(2)
    attn, value = torch.randn(2, 4, 9, 8, 25, generator=gen), torch.randn(2, 4, 9, 8, 6, generator=gen)
    x, weight = torch.randn(2, 8, 9, 8, generator=gen), torch.randn(2, 4, 9, 9, 8, generator=gen)
    cuda = torch.device("cuda")
    torch.testing.assert_close(
        neighborhood_aggregate(attn.to(cuda), value.to(cuda), 5).cpu(), neighborhood_aggregate(attn, value, 5)
    )
    torch.testing.assert_close(small_kernel_aggregate(x.to(cuda), weight.to(cuda)).cpu(), small_kernel_aggregate(x, weight))
