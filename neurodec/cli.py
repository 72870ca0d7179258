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


from neurodec.backbones.cli import app as _backbones_app  # noqa: E402  (light: registry only)

app.add_typer(_backbones_app, name="backbones")


if __name__ == "__main__":  # pragma: no cover
    app()
