"""Check a study config against the dataset and the backbones before any work.

:func:`check_study` finds, in seconds, what would otherwise stop a study
after hours of extraction and fitting: a dataset root, subject or atlas that
does not exist, a loader option the loader does not take, a backbone name,
layer, pooling or reduction that cannot apply. Errors name the config file
and the key.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._logging import get_logger
from .config import BackboneConfig, ConfigError, EncodingStudyConfig

__all__ = ["check_study"]

logger = get_logger(__name__)

#: extract_features arguments the pipeline sets itself.
_PIPELINE_EXTRACTION_ARGS = {
    "backbone", "stimuli", "layers", "pooling", "cache", "fit_ids", "verbose", "device", "random_state",
}


def _check_keywords(function: Callable, given: dict[str, Any], reserved: set[str], key: str, source: str) -> None:
    accepted = set(inspect.signature(function).parameters) - reserved
    unknown = sorted(set(given) - accepted)
    if unknown:
        name = getattr(function, "__name__", str(function))
        raise ConfigError(f"{source}: '{key}' has option(s) {unknown} that {name} does not take; "
                          f"it takes: {sorted(accepted)}.")


def _inventory(name: str, root: Path) -> tuple[set, dict[Any, set[str]]]:
    """Subjects with any file under ``root``, and the ROI atlases present for each (from the dataset's spec)."""
    from ..data.specs import load_spec

    subjects: set = set()
    atlases: dict[Any, set[str]] = {}
    for entry in load_spec(name).entries.values():
        if "subject" not in entry.fields:
            continue
        for values, _ in entry.find(root):
            subjects.add(values["subject"])
            atlas = values.get("roi", values.get("roi_name"))
            if atlas:
                atlases.setdefault(values["subject"], set()).add(atlas)
    return subjects, atlases


def _check_dataset(config: EncodingStudyConfig) -> None:
    from ..data.registry import _resolve, get_dataset

    ds, source = config.dataset, config.source
    if not ds.root.is_dir():
        hint = ""
        if "neurodec_demo" in ds.root.parts:  # the demo configs read what `neurodec demo` writes
            demo_parent = Path(*ds.root.parts[:ds.root.parts.index("neurodec_demo")])
            hint = f" It is the folder `neurodec demo` writes: run `neurodec demo` in {demo_parent} first."
        raise ConfigError(f"{source}: 'dataset.root' {ds.root} is not a folder. Give the dataset's root folder "
                          f"(a relative path is read from the config file's folder).{hint}")
    info = get_dataset(ds.name)
    _check_keywords(_resolve(info.responses), ds.options, {"root", "subject", "verbose"}, "dataset.options", source)
    _check_keywords(_resolve(info.stimuli), ds.stimulus_options, {"root", "ids"}, "dataset.stimulus_options", source)
    present, atlases = _inventory(ds.name, ds.root)
    missing = [s for s in ds.subjects if s not in present]
    if missing:
        raise ConfigError(f"{source}: 'dataset.subjects' lists {missing}, which have no file under {ds.root}; "
                          f"subjects found there: {sorted(present, key=str) or 'none'}.")
    wanted = config.outputs.get("atlas") or []
    loaded = ds.options.get("rois")
    if loaded is not None:
        not_loaded = [a for a in wanted if a not in loaded]
        if not_loaded:
            raise ConfigError(f"{source}: 'outputs.atlas' names {not_loaded}, which 'dataset.options.rois' does "
                              f"not load ({list(loaded)}); add them there or drop them from outputs.")
    selection = [ds.options["roi"]] if isinstance(ds.options.get("roi"), str) else []
    for subject in ds.subjects:
        absent = [a for a in [*selection, *wanted, *(loaded or [])] if a not in atlases.get(subject, set())]
        if absent:
            raise ConfigError(
                f"{source}: 'outputs.atlas' or 'dataset.options' name atlas(es) {sorted(set(absent))} that subject "
                f"{subject} does not have under {ds.root}; its atlases: {sorted(atlases.get(subject, set()))}."
            )
    logger.info("Checked %s at %s: subjects %s, atlases %s.", ds.name, ds.root, list(ds.subjects), wanted)


def _probe_images() -> np.ndarray:
    # One mid-gray image: enough for every layer to produce its output shape.
    return np.full((1, 64, 64, 3), 128, dtype=np.uint8)


def _check_backbone(config: EncodingStudyConfig, i: int, bb: BackboneConfig) -> None:
    """Build the backbone (random weights, or the given checkpoint) and extract one blank image."""
    from ..backbones import extract_features, get_backbone_spec, load

    source, where = config.source, f"backbones[{i}]"
    try:
        get_backbone_spec(bb.name)
    except ValueError as exc:
        raise ConfigError(f"{source}: '{where}.name': {exc}") from None
    if bb.weights not in ("pretrained", "random") and not Path(bb.weights).exists():
        raise ConfigError(f"{source}: '{where}.weights' {bb.weights} does not exist; give 'pretrained', 'random' "
                          "or a checkpoint file.")
    _check_keywords(extract_features, bb.options, _PIPELINE_EXTRACTION_ARGS, f"{where}.options", source)
    reduction = {k: bb.options[k] for k in ("reduction", "n_components") if k in bb.options}
    probe_options = {k: v for k, v in bb.options.items() if k not in ("reduction", "n_components", "batch_size")}
    # Pretrained weights are a download; the architecture (hence layer names and shapes) is the same
    # with random weights. A local checkpoint is loaded as given, so its keys are checked too.
    weights = "random" if bb.weights == "pretrained" else bb.weights
    try:
        backbone = load(bb.name, weights=weights, preprocess=bb.preprocess, strip_prefix=bb.strip_prefix,
                        device="cpu")
        probe = extract_features(backbone, _probe_images(), layers=list(bb.layers) if bb.layers else None,
                                 pooling=bb.pooling, verbose=False, **probe_options)
    except (ValueError, KeyError, TypeError, RuntimeError, FileNotFoundError) as exc:
        raise ConfigError(f"{source}: '{where}' ({bb.name}, layers {list(bb.layers or ['default'])}, pooling "
                          f"{bb.pooling!r}) cannot be extracted: {exc}") from None
    n_components = reduction.get("n_components")
    if reduction.get("reduction") and n_components is not None:
        small = {layer: f.n_features for layer, f in probe.items() if f.n_features < n_components}
        if small:
            raise ConfigError(
                f"{source}: '{where}.options.n_components' is {n_components}, more than the features of layer(s) "
                f"{small} (pooling {bb.pooling!r}). Use n_components <= {min(small.values())} or drop those layers."
            )
    logger.info("Checked %s: %s", bb.name, {layer: f.n_features for layer, f in probe.items()})


def check_study(config: EncodingStudyConfig, *, verbose: bool = False) -> EncodingStudyConfig:
    """Check ``config`` against its dataset and backbones; return it marked as checked.

    Checks that the dataset root exists, that the loaders take the given
    options, and that each backbone resolves and, built with random weights
    (or its local checkpoint), extracts the named layers with the named
    pooling from one blank image, with room for the asked reduction.

    Parameters
    ----------
    config : EncodingStudyConfig
    verbose : bool
        Log what was checked.

    Returns
    -------
    EncodingStudyConfig
        ``config`` with ``checked=True``.

    Raises
    ------
    ConfigError
        Naming the config file and the key at fault.
    """
    _check_dataset(config)
    for i, bb in enumerate(config.backbones):
        _check_backbone(config, i, bb)
    if verbose:
        logger.info("%s: config checked against the dataset and %d backbone(s).", config.source, len(config.backbones))
    return dataclasses.replace(config, checked=True)
