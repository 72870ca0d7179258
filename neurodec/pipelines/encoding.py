"""The encoding-study pipeline: dataset -> features -> encoding models -> outputs.

Wiring only: every step calls the public API a notebook would use
(:func:`neurodec.data.registry.load_responses`, :func:`neurodec.backbones.load`,
:func:`neurodec.backbones.extract_features`, :class:`neurodec.encoding.EncodingModel`,
:func:`neurodec.encoding.write_encoding_outputs`).

Re-running reuses finished work: features come from the resumable feature
cache, and each fitted model is saved (atomically) with its parameters and a
fingerprint of its training data, and reloaded instead of refitted when both
match (:func:`neurodec.encoding.fit_or_load_encoding_model`). Subjects can be
fanned out over a Dask cluster; a failing subject is named and the others finish.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._logging import get_logger
from .config import BackboneConfig, EncodingStudyConfig

__all__ = [
    "StudyError",
    "StudyResult",
    "fit_or_load_study_model",
    "load_backbone_features",
    "load_subject",
    "run_encoding_study",
    "run_subject",
]

logger = get_logger(__name__)


class StudyError(RuntimeError):
    """Some subjects of a study failed; the others finished.

    Attributes
    ----------
    failures : dict of subject -> BaseException
        Why each failed subject failed (a subject that failed on a Dask
        worker carries the worker's traceback text as ``worker_traceback``,
        which :meth:`tracebacks` shows).
    result : StudyResult
        What the finished subjects produced.
    """

    def tracebacks(self) -> str:
        """The failed subjects' tracebacks (from the workers where they ran there)."""
        parts = []
        for subject, exc in self.failures.items():
            text = getattr(exc, "worker_traceback", None) or "".join(traceback.format_exception(exc))
            parts.append(f"subject {subject}:\n{text}")
        return "\n".join(parts)

    def __init__(self, failures: dict[Any, BaseException], result: "StudyResult") -> None:
        self.failures, self.result = failures, result
        done = ", ".join(map(str, result.scores)) or "none"
        lines = "\n".join(f"  subject {s}: {type(e).__name__}: {e}" for s, e in failures.items())
        super().__init__(f"{len(failures)} subject(s) failed (finished: {done}):\n{lines}")


@dataclasses.dataclass
class StudyResult:
    """What :func:`run_encoding_study` produced.

    Attributes
    ----------
    scores : dict of subject -> dict of model name -> EncodingScores
    outputs : dict of subject -> dict of kind -> list of Path
        Files written per subject ("maps", "tables", "figures", "report").
    reused : dict of subject -> list of str
        Models whose fits were reused from an earlier run.
    """

    scores: dict[Any, dict[str, Any]]
    outputs: dict[Any, dict[str, list[Path]]]
    reused: dict[Any, list[str]]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", name.replace("/", "x"))


def _work_dir(config: EncodingStudyConfig) -> Path:
    return config.output_root / "work"


def load_backbone_features(
    config: EncodingStudyConfig, bb: BackboneConfig, stimuli: Any, fit_ids: Any, *, verbose: bool = True
) -> tuple[Any, dict]:
    """The backbone ``bb`` of ``config`` and its features of ``stimuli`` (from the study's feature cache).

    Returns
    -------
    backbone : neurodec.backbones.Backbone
    features : dict of layer -> Features
    """
    from ..backbones import extract_features, load

    backbone = load(bb.name, weights=bb.weights, preprocess=bb.preprocess, strip_prefix=bb.strip_prefix,
                    device=config.device, random_state=config.random_state)
    features = extract_features(
        backbone,
        stimuli,
        layers=list(bb.layers) if bb.layers else None,
        pooling=bb.pooling,
        cache=_work_dir(config) / "features",
        fit_ids=fit_ids,
        random_state=config.random_state,
        verbose=verbose,
        **bb.options,
    )
    return backbone, features


def load_subject(config: EncodingStudyConfig, subject: Any, *, verbose: bool = True) -> tuple[Any, Any, Any]:
    """One subject's responses, the stimuli they saw and the training stimulus ids.

    Returns
    -------
    responses : Responses
    stimuli : Stimuli
        Every stimulus the subject saw, in sorted id order (so the same set
        gives the same feature-cache key in every run).
    train_ids : array
        Ids of the training stimuli (reductions are fitted on them only).
    """
    from ..data.registry import load_responses, load_stimuli

    ds = config.dataset
    responses = load_responses(ds.name, ds.root, subject, verbose=verbose, **ds.options)
    ids = sorted(set(responses.stimulus_ids.tolist()))
    stimuli = load_stimuli(ds.name, ds.root, **{"ids": ids, **ds.stimulus_options})
    train_ids = responses.trials.loc[responses.trials["split"] == "train", "stimulus_id"].unique()
    return responses, stimuli, train_ids


def fit_or_load_study_model(
    config: EncodingStudyConfig, subject: Any, name: str, features: Any, responses: Any, *, verbose: bool = True
) -> Any:
    """The study's encoding model ``name`` ("backbone/layer") of ``subject``: its saved fit, or a new one.

    The fit lives under the study's work folder and is reused when its
    parameters and training data match (:func:`neurodec.encoding.fit_or_load_encoding_model`).
    """
    from ..encoding import fit_or_load_encoding_model

    params = {"device": config.device, "random_state": config.random_state, "verbose": verbose, **config.model}
    path = _work_dir(config) / "fits" / f"sub-{subject}" / f"{_safe(name)}.npz"
    return fit_or_load_encoding_model(path, features, responses, **params)


def run_subject(config: EncodingStudyConfig, subject: Any, *, verbose: bool = True) -> tuple[dict, dict, list]:
    """Run the study for one subject; returns (scores, written outputs, reused model names)."""
    from ..encoding import write_encoding_outputs

    responses, stimuli, train_ids = load_subject(config, subject, verbose=verbose)
    scores: dict[str, Any] = {}
    reused: list[str] = []
    for bb in config.backbones:
        _, features = load_backbone_features(config, bb, stimuli, train_ids, verbose=verbose)
        for layer, feats in features.items():
            name = f"{bb.name}/{layer}"
            model = fit_or_load_study_model(config, subject, name, feats, responses, verbose=verbose)
            if hasattr(model, "loaded_from_"):
                reused.append(name)
            scores[name] = dataclasses.replace(model.score(feats, responses), name=name)
    out_cfg = config.outputs
    written = write_encoding_outputs(
        scores,
        config.output_root,
        atlas=out_cfg.get("atlas"),
        figures=bool(out_cfg.get("figures", True)),
        report=bool(out_cfg.get("report", True)),
        data_description=out_cfg.get("data_description"),
        title=f"{config.name}: subject {subject}",
    )
    return scores, written, reused


@contextlib.contextmanager
def _dask_logs(verbose: bool) -> Iterator[None]:
    """Dask's own loggers at WARNING when verbose, else ERROR (restored afterwards)."""
    loggers = [logging.getLogger(name) for name in ("distributed", "dask")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING if verbose else logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _run_subject_or_error(subject: Any, config: EncodingStudyConfig) -> Any:
    """:func:`run_subject` on a worker; a failure comes back as its exception (the study reports it, not Dask)."""
    try:
        return run_subject(config, subject, verbose=False)
    except Exception as exc:  # noqa: BLE001 - returned to the client, raised there in a StudyError
        # A traceback does not survive pickling; its text, kept in the exception's __dict__, does.
        exc.worker_traceback = traceback.format_exc()
        return exc


def _run_on_dask(config: EncodingStudyConfig, subjects: list, verbose: bool) -> dict[Any, Any]:
    """Each subject's (result or exception), every subject run to its end."""
    from distributed import Client, LocalCluster, wait

    with _dask_logs(verbose):
        if config.scheduler == "local":
            cluster = LocalCluster(
                n_workers=min(len(subjects), 2), threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.WARNING if verbose else logging.ERROR,
            )
            client = Client(cluster)
        else:
            cluster, client = None, Client(config.scheduler)
        try:
            futures = client.map(_run_subject_or_error, subjects, config=config, pure=False)
            wait(futures)
            return {s: f.exception() if f.status == "error" else f.result() for s, f in zip(subjects, futures)}
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _run_serially(config: EncodingStudyConfig, subjects: list, verbose: bool) -> dict[Any, Any]:
    """Each subject's (result or exception); a failing subject does not stop the others."""
    outcomes: dict[Any, Any] = {}
    for subject in subjects:
        try:
            outcomes[subject] = run_subject(config, subject, verbose=verbose)
        except Exception as exc:  # noqa: BLE001 - reported per subject, with the others' results, in StudyError
            if len(subjects) == 1:
                raise
            logger.error("Subject %s failed: %s: %s", subject, type(exc).__name__, exc)
            outcomes[subject] = exc
    return outcomes


def run_encoding_study(config: EncodingStudyConfig, *, verbose: bool = True) -> StudyResult:
    """Run every subject of ``config``; on a Dask cluster when ``config.scheduler`` is set.

    The config is first checked against the data and backbones
    (:func:`~neurodec.pipelines.checks.check_study`) unless it already was.
    ``scheduler: local`` starts a ``distributed.LocalCluster`` (quiet unless
    ``verbose``); any other string is the address of a running scheduler. A
    single subject runs in this process, without a cluster.

    Raises
    ------
    StudyError
        When some subjects failed: after the others finished; it names each
        failed subject and why, and carries the finished subjects' result.
    """
    if not config.checked:
        from .checks import check_study

        config = check_study(config, verbose=verbose)
    subjects = list(config.dataset.subjects)
    if config.scheduler and len(subjects) > 1:
        outcomes = _run_on_dask(config, subjects, verbose)
    else:
        outcomes = _run_serially(config, subjects, verbose)
    done = {s: r for s, r in outcomes.items() if not isinstance(r, BaseException)}
    result = StudyResult(
        scores={s: r[0] for s, r in done.items()},
        outputs={s: r[1] for s, r in done.items()},
        reused={s: r[2] for s, r in done.items()},
    )
    failures = {s: r for s, r in outcomes.items() if isinstance(r, BaseException)}
    if failures:
        raise StudyError(failures, result)
    return result
