"""The encoding-study pipeline: dataset -> features -> encoding models -> outputs.

Wiring only: every step calls the public API a notebook would use
(:func:`neurodec.data.registry.load_responses`, :func:`neurodec.backbones.load`,
:func:`neurodec.backbones.extract_features`, :class:`neurodec.encoding.EncodingModel`,
:func:`neurodec.encoding.write_encoding_outputs`).

Re-running reuses finished work: features come from the resumable feature
cache, and each fitted model is saved (atomically) with its parameters and a
fingerprint of its training data, and reloaded instead of refitted when both
match (:func:`neurodec.encoding.load_matching_encoding_model`). Subjects can be fanned out over a Dask cluster.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from .._logging import get_logger
from .config import BackboneConfig, EncodingStudyConfig

__all__ = ["StudyResult", "run_encoding_study", "run_subject"]

logger = get_logger(__name__)


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


def _extract(config: EncodingStudyConfig, bb: BackboneConfig, stimuli: Any, fit_ids: Any, verbose: bool) -> dict:
    from ..backbones import extract_features, load

    backbone = load(bb.name, weights=bb.weights, device=config.device, seed=config.seed)
    return extract_features(
        backbone,
        stimuli,
        layers=list(bb.layers) if bb.layers else None,
        pooling=bb.pooling,
        cache=_work_dir(config) / "features",
        fit_ids=fit_ids,
        seed=config.seed,
        verbose=verbose,
        **bb.options,
    )


def run_subject(config: EncodingStudyConfig, subject: Any, *, verbose: bool = True) -> tuple[dict, dict, list]:
    """Run the study for one subject; returns (scores, written outputs, reused model names)."""
    from ..data.registry import load_responses, load_stimuli
    from ..encoding import EncodingModel, load_matching_encoding_model, write_encoding_outputs

    ds = config.dataset
    responses = load_responses(ds.name, ds.root, subject, verbose=verbose, **ds.options)
    # Sorted ids: the same stimulus set gives the same feature-cache key in every run.
    ids = sorted(set(responses.stimulus_ids.tolist()))
    stimuli = load_stimuli(ds.name, ds.root, **{"ids": ids, **ds.stimulus_options})
    train_ids = responses.trials.loc[responses.trials["split"] == "train", "stimulus_id"].unique()
    fits = _work_dir(config) / "fits" / f"sub-{subject}"
    params = {"device": config.device, "random_state": config.seed, "verbose": verbose, **config.model}
    scores: dict[str, Any] = {}
    reused: list[str] = []
    for bb in config.backbones:
        for layer, feats in _extract(config, bb, stimuli, train_ids, verbose).items():
            name = f"{bb.name}/{layer}"
            path = fits / f"{_safe(name)}.npz"
            model = load_matching_encoding_model(path, feats, responses, **params)
            if model is None:
                model = EncodingModel(**params).fit(feats, responses)
                model.save(path)
            else:
                reused.append(name)
            scores[name] = dataclasses.replace(model.score(feats, responses), name=name)
    out_cfg = config.outputs
    written = write_encoding_outputs(
        scores,
        config.output_root,
        atlas=out_cfg.get("atlas"),
        figures=bool(out_cfg.get("figures", True)),
        report=bool(out_cfg.get("report", True)),
        title=f"{config.name}: subject {subject}",
    )
    return scores, written, reused


def run_encoding_study(config: EncodingStudyConfig, *, verbose: bool = True) -> StudyResult:
    """Run every subject of ``config``; on a Dask cluster when ``config.scheduler`` is set.

    ``scheduler: local`` starts a ``distributed.LocalCluster``; any other
    string is the address of a running scheduler.
    """
    subjects = list(config.dataset.subjects)
    if config.scheduler and len(subjects) > 1:
        from distributed import Client, LocalCluster

        if config.scheduler == "local":
            cluster = LocalCluster(n_workers=min(len(subjects), 2), threads_per_worker=1, processes=True)
            client = Client(cluster)
        else:
            cluster, client = None, Client(config.scheduler)
        try:
            futures = client.map(lambda s: run_subject(config, s, verbose=False), subjects, pure=False)
            results = client.gather(futures)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    else:
        results = [run_subject(config, s, verbose=verbose) for s in subjects]
    return StudyResult(
        scores={s: r[0] for s, r in zip(subjects, results)},
        outputs={s: r[1] for s, r in zip(subjects, results)},
        reused={s: r[2] for s, r in zip(subjects, results)},
    )
