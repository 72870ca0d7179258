"""Checks shared by the tests of neurodec's own architectures (HorNet, RepMLPNet, MOAT)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from neurodec.backbones import get_backbone_spec


def resolve(target: str) -> Callable:
    """Import the ``"module:function"`` a spec names."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


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


def assert_loads_release(
    name: str, builder: Callable[..., nn.Module], wrap: Callable[[dict], object], x: torch.Tensor
) -> None:
    """Weights saved in the authors' format load strictly through the spec's filter.

    ``wrap`` turns a state dict into what the authors' checkpoint file holds
    (e.g. ``{"model": state_dict, "epoch": ...}``). The weights also load when
    every name carries the ``module.`` prefix of DistributedDataParallel.
    """
    torch.manual_seed(0)
    source = randomize_(builder())
    with torch.no_grad():
        expected = source(x)
    state = source.state_dict()
    checkpoint_filter = resolve(get_backbone_spec(name).checkpoint_filter)
    for released in (wrap(state), wrap({f"module.{k}": v for k, v in state.items()})):
        model = builder()
        model.load_state_dict(checkpoint_filter(released, model), strict=True)
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(x), expected)


def stage_outputs(model: nn.Module, layers: tuple[str, ...], x: torch.Tensor) -> list[torch.Tensor]:
    """Outputs of the named submodules during one forward pass."""
    outputs: list[torch.Tensor] = []
    modules = dict(model.named_modules())
    handles = [modules[layer].register_forward_hook(lambda m, i, o: outputs.append(o)) for layer in layers]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs
