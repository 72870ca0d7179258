"""The ``neurodec backbones`` commands."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(name="backbones", help="Vision backbones: list registered models and their layers.",
                  no_args_is_help=True)


def _all_layers(name: str) -> list[str]:
    """Every layer of ``name``, from a randomly initialized copy built on the meta device (no memory, fast)."""
    from .loading import load

    return load(name, weights="random", device="meta").layer_names()


@app.command("list")
def list_command(
    pattern: str = typer.Argument("*", help="Shell-style name pattern, e.g. 'timm/convnext*'; or any library model name."),
    layers: bool = typer.Option(False, "--layers", help="Also list every extractable layer (builds the model)."),
) -> None:
    """List registered backbones with their source and default layers."""
    from .registry import get_backbone_spec, list_backbones

    names = list_backbones(pattern)
    if not names and not any(c in pattern for c in "*?["):
        try:
            names = [get_backbone_spec(pattern).name]
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from None
    if not names:
        typer.echo(f"No registered backbone matches {pattern!r}.", err=True)
        raise typer.Exit(code=1)
    for name in names:
        spec = get_backbone_spec(name)
        typer.echo(f"{name}\t{spec.source}\t{spec.description}")
        typer.echo(f"  default layers: {', '.join(spec.layers) or '(derived from the model)'}")
        if layers:
            all_layers = _all_layers(name)
            typer.echo(f"  all layers ({len(all_layers)}):")
            for layer in all_layers:
                typer.echo(f"    {layer}")
