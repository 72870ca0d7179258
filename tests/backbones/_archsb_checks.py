"""Checks shared by the tests of neurodec's own architectures (LSNet, TransXNet, OverLoCK)."""

from __future__ import annotations

import importlib

import torch

from neurodec.backbones import get_backbone_spec


def resolve(path: str):  # type: ignore[no-untyped-def]
    """The object named by a spec's ``"module:function"`` string."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def n_parameters(builder, **kwargs) -> int:  # type: ignore[no-untyped-def]
    """Parameter count of ``builder(**kwargs)``, built on the meta device (no memory, fast)."""
    with torch.device("meta"):
        model = builder(**kwargs)
    return sum(p.numel() for p in model.parameters())


def randomize_buffers(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give batch-norm statistics and zero-initialized parameters random values.

    Fresh models have identity batch norms and zero layer scales, which would
    let a wrongly loaded state dict go unnoticed.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.rand(tensor.shape, generator=gen) * 0.5 + 0.75
                tensor.copy_(noise if name.endswith("running_var") else tensor + 0.05 * (noise - 1.0))
    return model.eval()


def hooked_outputs(model: torch.nn.Module, layers, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """Outputs of the named submodules during one forward pass."""
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


def check_release_round_trip(name: str, tmp_path, x: torch.Tensor, *, nesting: str | None, **build) -> None:  # type: ignore[no-untyped-def]
    """Save a model, load it into a fresh one through the spec's filter, compare outputs.

    With ``nesting`` the file is written as the authors' training script writes
    it (weights under ``nesting``, names prefixed by ``"module."``); without,
    it is a plain ``state_dict``.
    """
    spec = get_backbone_spec(name)
    builder = resolve(spec.model_id)
    torch.manual_seed(0)
    source = randomize_buffers(builder(**build))
    path = tmp_path / f"{name}.pth"
    if nesting is None:
        torch.save(source.state_dict(), path)
    else:
        released = {f"module.{k}": v for k, v in source.state_dict().items()}
        torch.save({nesting: released, "epoch": 299, "optimizer": {}}, path)

    torch.manual_seed(1)
    target = builder(**build).eval()
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = resolve(spec.checkpoint_filter)(checkpoint, target)
    target.load_state_dict(state, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)
