"""The ``neurodec`` command line.

Each command is a thin wrapper over the public API that a notebook would use.
Heavy imports happen inside the commands so ``neurodec --help`` is instant.
"""

from __future__ import annotations

import logging

import typer

app = typer.Typer(
    name="neurodec",
    help="Brain encoding and decoding: datasets, backbones, ridge, encoding models.",
    no_args_is_help=True,
    add_completion=False,
)


def _log_to_console(verbose: bool) -> None:
    """neurodec's messages on the console (INFO, or WARNING when quiet); other libraries' at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("neurodec").setLevel(logging.INFO if verbose else logging.WARNING)


@app.command()
def version() -> None:
    """Print the installed neurodec version."""
    from neurodec import __version__

    typer.echo(__version__)


@app.command()
def demo(
    root: str = typer.Option("neurodec_demo", help="Folder for the simulated dataset and the outputs."),
    random_state: int = typer.Option(0, help="Seed of the simulation and of the backbone's random weights."),
    device: str = typer.Option("cpu", help="'cpu', 'cuda' or 'auto'."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Simulate an NSD-format subject, run the encoding pipeline on it, write a report."""
    from neurodec.pipelines.demo import run_demo

    _log_to_console(not quiet)
    result = run_demo(root, random_state=random_state, device=device, verbose=not quiet)
    typer.echo("\nRecovered encoding vs the simulation's planted truth (median over each area's voxels):")
    typer.echo(result.summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"\nReport: {result.report}")


@app.command()
def run(
    config: str = typer.Argument(..., help="Pipeline config (YAML), e.g. pipelines/encoding_nsd.yaml."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Run a study from a config file: encoding, discovery, decoding, MEG decoder or iEEG transformer.

    Re-running reuses finished work. The config is checked against the
    dataset and the backbones before any work. When some subjects of an
    encoding study fail, the others finish and the command exits 1 naming
    each failed subject. A config with a ``study:`` key is a discovery study
    (MDS, BrainDiVE, voxel captions; see pipelines/discovery_demo.yaml); one
    with ``kind: decoding`` a decoding study (retrieval, reconstruction, brain
    captions; see pipelines/decoding_demo.yaml); one with a ``meg_decoder:``
    section trains the MEG image decoder beside the ridge baseline
    (pipelines/meg_decoder_demo.yaml); one with an ``ieeg_transformer:``
    section pretrains the iEEG transformer and scores its probe beside the
    linear baseline (pipelines/ieeg_transformer_demo.yaml).
    """
    from neurodec.pipelines import ConfigError, StudyError

    _log_to_console(not quiet)
    try:
        _STUDY_RUNNERS[_study_kind(config)](config, quiet)
    except (ConfigError, FileNotFoundError) as exc:
        typer.echo(f"Config error: {exc}", err=True)
        raise typer.Exit(2) from None
    except StudyError as exc:
        _echo_reports(exc.result)
        if not quiet:
            typer.echo(exc.tracebacks(), err=True)
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


def _study_kind(config: str) -> str:
    """Which pipeline a config file is for, from its top-level keys (see :func:`run`)."""
    from neurodec.pipelines.decoding_config import is_decoding_config
    from neurodec.pipelines.discovery_config import is_discovery_config
    from neurodec.pipelines.ieeg_transformer import is_ieeg_transformer_config
    from neurodec.pipelines.meg_decoder import is_meg_decoder_config

    detectors = {"meg_decoder": is_meg_decoder_config, "ieeg_transformer": is_ieeg_transformer_config,
                 "decoding": is_decoding_config, "discovery": is_discovery_config}
    return next((kind for kind, is_kind in detectors.items() if is_kind(config)), "encoding")


def _run_encoding(config: str, quiet: bool) -> None:
    from neurodec.pipelines import load_config, run_encoding_study

    _echo_reports(run_encoding_study(load_config(config, verbose=not quiet), verbose=not quiet))


def _run_meg_decoder(config: str, quiet: bool) -> None:
    from neurodec.pipelines.meg_decoder import load_meg_decoder_config, run_meg_decoder

    result = run_meg_decoder(load_meg_decoder_config(config), verbose=not quiet)
    for name in ("decoder", "ridge", "chance"):
        typer.echo(f"{name}: top-1 {result.scores[name]['top1']:.3f}, top-5 {result.scores[name]['top5']:.3f} "
                   f"({result.n_test} test images)")


def _run_ieeg_transformer(config: str, quiet: bool) -> None:
    from neurodec.pipelines.ieeg_transformer import load_ieeg_transformer_config, run_ieeg_transformer

    result = run_ieeg_transformer(load_ieeg_transformer_config(config), verbose=not quiet)
    typer.echo(f"probe ROC-AUC {result.roc_auc:.3f}, linear baseline {result.baseline_roc_auc:.3f} "
               f"(chance 0.5, sd {result.chance_sd:.3f}; {result.n_positive + result.n_negative} test trials)")


def _run_discovery(config: str, quiet: bool) -> None:
    from neurodec.pipelines.discovery import run_discovery
    from neurodec.pipelines.discovery_config import load_discovery_config

    result = run_discovery(load_discovery_config(config, verbose=not quiet), verbose=not quiet)
    for subject, files in result.outputs.items():
        reports = [f for f in files if f.suffix == ".html"]
        typer.echo(f"subject {subject}: {len(files)} files under {files[0].parent}" if files else f"subject {subject}: no files")
        for report in reports:
            typer.echo(f"  report: {report}")


def _run_decoding(config: str, quiet: bool) -> None:
    from neurodec.pipelines.decoding import run_decoding
    from neurodec.pipelines.decoding_config import load_decoding_config

    result = run_decoding(load_decoding_config(config, verbose=not quiet), verbose=not quiet)
    for subject, metrics in result.metrics.items():
        top1 = metrics["embeddings"].get("top1", {})
        typer.echo(f"subject {subject}: top-1 image retrieval {top1.get('image_retrieval', float('nan')):.3f} "
                   f"(chance {top1.get('chance', float('nan')):.3f})")
        for path in result.outputs[subject]:
            if path.suffix == ".html":
                typer.echo(f"  report: {path}")


#: The pipeline each kind of config runs; a config's kind comes from :func:`_study_kind`.
_STUDY_RUNNERS = {
    "encoding": _run_encoding,
    "meg_decoder": _run_meg_decoder,
    "ieeg_transformer": _run_ieeg_transformer,
    "decoding": _run_decoding,
    "discovery": _run_discovery,
}


def _echo_reports(study: "object") -> None:
    for subject, written in study.outputs.items():
        for path in written.get("report", []):
            typer.echo(f"subject {subject}: report {path}")


@app.command("check-data")
def check_data(
    dataset: str = typer.Argument(..., help="Dataset spec name, e.g. nsd, algonauts, bold5000, things-meg, bids-ieeg."),
    root: str = typer.Argument(..., help="The dataset's root folder."),
    nan_trials: int = typer.Option(
        8, help="Trials of each float beta file scanned for NaN, evenly spaced; 0 scans every trial."
    ),
) -> None:
    """Check a dataset folder: files against the spec, then what the loader would refuse; exit 1 when not usable.

    Lists the subjects, sessions and atlases found. "usable" means the loader
    reads them correctly: trial counts agree between design, behaviour file
    and beta files, no session is missing in the middle, no ROI is empty, the
    scanned betas are finite.
    """
    from neurodec.data.checks import check_dataset
    from neurodec.data.specs import list_specs

    dataset = dataset.lower()  # "NSD" as papers write it; the specs are named in lower case
    if dataset not in list_specs():
        typer.echo(f"Unknown dataset {dataset!r}; known: {', '.join(list_specs())}.", err=True)
        raise typer.Exit(2)
    if nan_trials < 0:
        typer.echo(f"--nan-trials must be >= 0 (0: every trial). Got {nan_trials}.", err=True)
        raise typer.Exit(2)
    try:
        report = check_dataset(dataset, root, nan_trials=nan_trials or None)
    except FileNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(report.format())
    if not report.usable:
        raise typer.Exit(1)


from neurodec.backbones.cli import app as _backbones_app  # noqa: E402  (light: registry only)

app.add_typer(_backbones_app, name="backbones")


if __name__ == "__main__":  # pragma: no cover
    app()
