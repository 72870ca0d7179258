"""The ``neurodec`` command line.

Each command is a thin wrapper over the public API that a notebook would use.
Heavy imports happen inside the commands so ``neurodec --help`` is instant.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="neurodec",
    help="Brain encoding and decoding: datasets, backbones, ridge, encoding models.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print the installed neurodec version."""
    from neurodec import __version__

    typer.echo(__version__)


@app.command("check-data")
def check_data(
    dataset: str = typer.Argument(..., help="Dataset spec name, e.g. nsd, algonauts, bold5000."),
    root: str = typer.Argument(..., help="The dataset's root folder."),
) -> None:
    """Check a dataset folder against its spec; exit 1 when it is not usable."""
    from neurodec.data.specs import check_root, list_specs

    if dataset not in list_specs():
        typer.echo(f"Unknown dataset {dataset!r}; known: {', '.join(list_specs())}.", err=True)
        raise typer.Exit(2)
    try:
        report = check_root(dataset, root)
    except FileNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(report.format())
    if not report.usable:
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
