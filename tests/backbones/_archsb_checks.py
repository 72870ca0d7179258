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


def check_checkpoint_round_trip(name: str, tmp_path, x: torch.Tensor, *, nesting: str, **build) -> None:  # type: ignore[no-untyped-def]
    """Save a model, load it into a fresh one through the spec's filter, compare outputs.

    Two files are written: a plain ``state_dict``, and one laid out as the
    authors' training script writes it (weights under ``nesting``, names
    prefixed by ``"module."`` as under DistributedDataParallel). Each is loaded
    strictly into a model whose weights differ from the source's.
    """
    spec = get_backbone_spec(name)
    builder = resolve(spec.model_id)
    checkpoint_filter = resolve(spec.checkpoint_filter)
    torch.manual_seed(0)
    source = randomize_buffers(builder(**build))
    plain, released = tmp_path / "plain.pth", tmp_path / "released.pth"
    torch.save(source.state_dict(), plain)
    wrapped = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({nesting: wrapped, "epoch": 299, "optimizer": {}}, released)
    with torch.no_grad():
        expected = source(x)
        target = builder(**build)
        for seed, path in enumerate((plain, released), start=1):
            randomize_buffers(target, seed=seed)
            assert not torch.allclose(target(x), expected)
            state = checkpoint_filter(torch.load(path, map_location="cpu", weights_only=True), target)
            target.load_state_dict(state, strict=True)
            torch.testing.assert_close(target(x), expected, rtol=0, atol=0)


def check_spec_layers(name: str) -> None:
    """The spec's builder builds (on the meta device) a model that has every default layer."""
    spec = get_backbone_spec(name)
    with torch.device("meta"):
        model = resolve(spec.model_id)()
    for layer in spec.layers:
        model.get_submodule(layer)
    assert callable(getattr(model, "forward_features", None))
