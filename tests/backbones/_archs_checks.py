"""Checks shared by the tests of neurodec's own architectures (HorNet, RepMLPNet, MOAT, LSNet, TransXNet, OverLoCK)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neurodec.backbones import get_backbone_spec, load
from neurodec.backbones.archs._hornet_model import HorNet
from neurodec.backbones.archs._moat_model import MOAT
from neurodec.backbones.archs._moat_tf import _tf_variable
from neurodec.backbones.archs._repmlp_model import RepMLPNet

REFERENCES = Path(__file__).parent / "data" / "arch_references.json"


def small_hornet() -> nn.Module:
    """A narrow, shallow HorNet with 7x7 and global-filter stages: fast to build and run."""
    return HorNet((1, 1, 2, 1), 8, filter_sizes=(None, None, (4, 3), (2, 2)), num_classes=5)


def small_repmlpnet(**kwargs: object) -> nn.Module:
    """Four stages, several partitions per map and share sets of several channels, on 64 px input."""
    return RepMLPNet(
        (1, 1, 2, 1), (8, 16, 32, 64), hs=(8, 4, 2, 2), ws=(8, 4, 2, 2), sharesets_nums=(1, 4, 8, 16),
        num_classes=5, **kwargs,
    )  # fmt: skip


def small_moat() -> nn.Module:
    """A shallow MOAT with both block types, position embeddings and an MBConv shortcut convolution."""
    return MOAT((8, 8), (1, 1, 2, 1), (16, 32, 64, 64), num_classes=5)


def reference_input(size: int) -> torch.Tensor:
    """The input of the stored reference outputs, tensor of shape (2, 3, size, size)."""
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


def resolve(target: str) -> Callable:
    """Import the ``"module:function"`` a spec names."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def assert_specs_build(names: list[str]) -> None:
    """Every spec's ``model_id`` builds a model (on the meta device) that has the spec's layers."""
    for name in names:
        spec = get_backbone_spec(name)
        assert spec.name == name and spec.source == "neurodec"
        with torch.device("meta"):
            model = resolve(spec.model_id)()
        for layer in spec.layers:
            model.get_submodule(layer)
        assert callable(getattr(model, "forward_features", None)), name
        # Wrapped checkpoints are unwrapped by the loader; a filter only renames (MOAT's TF conversion).
        assert spec.checkpoint_filter is None or callable(resolve(spec.checkpoint_filter)), name
        assert spec.citation and spec.license, name


def count_params(builder: Callable[..., nn.Module], **kwargs: object) -> int:
    """Number of parameters of ``builder(**kwargs)``, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = builder(**kwargs)
    return sum(p.numel() for p in model.parameters())


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give norms, layer scales and BN statistics non-trivial values; return ``model`` in eval mode.

    Freshly initialized layer scales (1e-6) make residual blocks near identities
    and fresh BN statistics make BNs identities: comparisons of outputs would
    then not see the blocks at all.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.rsplit(".", 1)[-1].startswith("gamma"):
                param.copy_(torch.rand(param.shape, generator=gen) + 0.5)
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)) or type(module).__name__ == "LayerNorm2d":
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
    return model.eval()


def perturb_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Shift every floating entry of the state dict a little; return ``model`` in eval mode.

    Unlike :func:`randomize_`, which sets the layers it knows by name, this
    reaches every parameter and buffer (e.g. the LayerScale convolutions and
    zero-initialized parameters of TransXNet/OverLoCK), so a wrongly loaded
    entry of any kind changes the outputs.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.rand(tensor.shape, generator=gen) * 0.5 + 0.75
                tensor.copy_(noise if name.endswith("running_var") else tensor + 0.05 * (noise - 1.0))
    return model.eval()


def fill_deterministic_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Set every floating entry of the state dict from a seeded generator, in sorted-name order.

    Two models with the same parameter names and shapes (ours and the authors')
    receive identical weights, which is how the reference outputs in
    ``data/arch_references.json`` were produced from the authors' code.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            if not tensor.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var" or (tensor.dim() == 1 and leaf in ("weight", "gamma1", "gamma2")):
                value = torch.rand(tensor.shape, generator=gen) + 0.5
            elif tensor.dim() == 1:
                value = torch.randn(tensor.shape, generator=gen) * 0.1
            else:  # 1 / sqrt(fan in): signals neither vanish nor explode through the stages
                value = torch.randn(tensor.shape, generator=gen) * (tensor[0].numel() ** -0.5)
            tensor.copy_(value)
    return model.eval()


def assert_state_dict_round_trip(builder: Callable[..., nn.Module], x: torch.Tensor, tmp_path: Path) -> None:
    """Saving a model's weights and loading them into a fresh model reproduces its outputs."""
    torch.manual_seed(0)
    model = randomize_(builder())
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    torch.manual_seed(1)
    fresh = builder().eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(x), model(x))
        fresh.load_state_dict(torch.load(path, weights_only=True))
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


def use_small_builder(monkeypatch: pytest.MonkeyPatch, name: str, builder: Callable[..., nn.Module]) -> None:
    """Make spec ``name``'s ``model_id`` build ``builder()`` for this test (its other fields stay)."""
    module, _, attribute = get_backbone_spec(name).model_id.partition(":")
    monkeypatch.setattr(importlib.import_module(module), attribute, builder)


def assert_loads_release(
    name: str,
    x: torch.Tensor,
    tmp_path: Path,
    *,
    wrap: Callable[[dict], object],
    randomize: Callable[[nn.Module], nn.Module] = randomize_,
    **build: object,
) -> None:
    """Weights saved as the authors saved them load through ``neurodec.backbones.load(name, weights=path)``.

    Three files are written with ``torch.save`` from a randomized model: its
    plain state dict, ``wrap(state_dict)`` (what the authors' training script
    writes, e.g. ``{"model": state_dict, "epoch": 299}``), and the latter with
    every name prefixed by ``module.`` as under DistributedDataParallel. Each
    is loaded (``build``: the builder's keyword arguments, passed by ``load``)
    into a model initialized differently from the source, and must reproduce
    the source's outputs exactly.
    """
    torch.manual_seed(0)
    source = randomize(resolve(get_backbone_spec(name).model_id)(**build))
    state = source.state_dict()
    with torch.no_grad():
        expected = source(x)
        assert not torch.allclose(load(name, weights="random", device="cpu", random_state=1, **build).root(x), expected)
    prefixed = {f"module.{k}": v for k, v in state.items()}
    for i, released in enumerate((state, wrap(state), wrap(prefixed))):
        path = tmp_path / f"released_{i}.pth"
        torch.save(released, path)
        with pytest.warns(UserWarning, match="without preprocessing metadata"):  # the registry default is used
            model = load(name, weights=path, device="cpu", random_state=1, **build).root
        with torch.no_grad():
            torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


def hooked_outputs(model: nn.Module, layers: Sequence[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs of the named submodules during one forward pass, by name."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        model.get_submodule(name).register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
        for name in layers
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def to_tf_variables(model: nn.Module) -> dict[str, np.ndarray]:
    """``model``'s weights under deeplab2's TensorFlow names and layouts (the converter's inverse)."""
    modules = dict(model.named_modules())
    tf_vars = {}
    for key, value in model.state_dict().items():
        path, _, leaf = key.rpartition(".")
        module, name = modules[path], _tf_variable(key, modules[path])
        if name is None:
            continue
        if isinstance(module, nn.Conv2d) and leaf == "weight":
            value = value.permute(2, 3, 0, 1) if module.groups > 1 else value.permute(2, 3, 1, 0)
        elif path.endswith(("attention.q", "attention.k", "attention.v", "attention.o")):
            attention = modules[path.rpartition(".")[0]]
            heads = (attention.num_heads, attention.head_size)
            if path.endswith("attention.o"):
                value = value.t().reshape(*heads, -1) if leaf == "weight" else value
            else:
                value = value.t().reshape(-1, *heads) if leaf == "weight" else value.reshape(heads)
        elif isinstance(module, nn.Linear) and leaf == "weight":  # the classifier, a 1x1 Conv2D in TF
            value = value.t()[None, None]
        tf_vars[name] = value.numpy().copy()
    return tf_vars


def reference_logits(arch: str, key: str) -> torch.Tensor:
    """Logits the authors' code computed for a small configuration (see ``_make_arch_references.py``).

    The two samples' logits differ clearly, so agreement tests see the input.
    """
    logits = torch.tensor(json.loads(REFERENCES.read_text())[arch][key])
    assert (logits[0] - logits[1]).abs().max() > 0.05 * logits.abs().max(), "reference insensitive to the input"
    return logits
