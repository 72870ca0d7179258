"""Discovery pipeline configuration: which encoding study, subject and model; which methods, with what.

Example (``pipelines/discovery_demo.yaml``)::

    name: demo-discovery
    study: encoding_demo.yaml          # the encoding study: dataset, backbones, fitted models (reused)
    model: timm/resnet18/layer4        # one of its models, "<backbone>/<layer>"
    subjects: [1]                      # default: the study's subjects
    mds:                               # most discriminative stimuli (Burg et al. 2024)
      units: {floc-faces: all, floc-places: all}
      n_clusters: 2
      image_size: 64
      options: {n_steps: 50, n_init: 2}          # more most_discriminative_stimuli arguments
    braindive:                         # brain-guided diffusion (Luo et al. 2023)
      units: {floc-faces: all}
      pipeline: small                  # or a hub id / a local folder of a diffusers pipeline
      seeds: 8
      top: 4
      options: {guidance_scale: 130, num_inference_steps: 20}
    captions:                          # voxel captions (BrainSCUBA, LaVCa)
      units: {floc-faces: all, floc-places: all}
      captioner: small                 # "small", a GPT-2 hub id / folder to train, or a saved PrefixCaptioner folder
      train: {epochs: 30, train_decoder: true}
    outputs: {root: derivatives}       # default: the study's outputs root
    device: auto
    random_state: 0

``units`` maps ROI atlases (``roi:<atlas>`` columns of the responses) to one
label, a list of labels or ``all`` (every labelled voxel of the atlas).
Every key and value type is checked when the file is read, ``options`` against
the signature of the function they go to; errors name the file and the key.
Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import (
    EncodingStudyConfig,
    _boolean,
    _device,
    _fail,
    _integer,
    _mapping,
    _read_yaml,
    _required,
    _string,
    _subjects,
    path_resolver,
)

__all__ = ["DiscoveryConfig", "discovery_config_from_dict", "is_discovery_config", "load_discovery_config"]

#: Methods a discovery config can run, in the order they run.
METHODS = ("mds", "braindive", "captions")

_SECTIONS = {
    "top": {"name", "study", "model", "subjects", "outputs", "device", "random_state", *METHODS},
    "outputs": {"root", "report", "data_description"},
    "mds": {"units", "n_clusters", "image_size", "options"},
    "braindive": {"units", "pipeline", "scheduler", "seeds", "top", "image_size", "unguided", "natural_top_k",
                  "pipeline_options", "options"},
    "captions": {"units", "captioner", "train", "methods", "brainscuba", "lavca"},
}
_CAPTION_METHODS = ("brainscuba", "lavca")
#: Arguments the pipeline itself passes; a config's ``options`` may not set them.
_RESERVED = {"model", "image_shape", "n_clusters", "pipe", "encoder", "objective", "score_fn", "seeds", "device",
             "random_state", "verbose", "weights_or_model", "bank", "captioner", "units", "predictions", "captions",
             "images", "image_captioner", "scheduler", "decoder", "tokenizer"}


@dataclasses.dataclass(frozen=True)
class DiscoveryConfig:
    """A discovery study (see the module docstring for the YAML form).

    ``study`` is the checked encoding study whose data, features and fits are
    reused; each method section is a plain mapping (None when not run).
    """

    name: str
    study: EncodingStudyConfig
    model: str
    subjects: tuple[Any, ...]
    outputs: dict[str, Any]
    mds: dict[str, Any] | None = None
    braindive: dict[str, Any] | None = None
    captions: dict[str, Any] | None = None
    device: str = "auto"
    random_state: int = 0
    source: str = "config"

    @property
    def output_root(self) -> Path:
        return Path(self.outputs.get("root", self.study.output_root))

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods the config runs, in run order."""
        return tuple(m for m in METHODS if getattr(self, m) is not None)


def _units(value: Any, key: str, source: str) -> dict[str, list[str] | None]:
    """``{atlas: label | [labels] | "all"}`` -> ``{atlas: [labels] or None for all}``."""
    units = _mapping(value, key, source)
    if not units:
        raise _fail(source, key, "must name at least one ROI atlas, e.g. {floc-faces: [FFA-1, FFA-2]} or {floc-faces: all}.")
    out: dict[str, list[str] | None] = {}
    for atlas, labels in units.items():
        if labels == "all":
            out[str(atlas)] = None
        elif isinstance(labels, str):
            out[str(atlas)] = [labels]
        elif isinstance(labels, (list, tuple)) and labels and all(isinstance(v, str) for v in labels):
            out[str(atlas)] = list(labels)
        else:
            raise _fail(source, f"{key}.{atlas}", f"must be a label, a list of labels or 'all'. Got {labels!r} instead.")
    return out


def _options(value: Any, key: str, source: str, functions: tuple[Callable, ...]) -> dict[str, Any]:
    """A mapping of keyword arguments that one of ``functions`` accepts (and the pipeline does not set itself)."""
    options = _mapping(value, key, source)
    accepted = set().union(*(inspect.signature(f).parameters for f in functions)) - _RESERVED
    for name in options:
        if name not in accepted:
            names = " / ".join(f.__name__ for f in functions)
            raise _fail(source, f"{key}.{name}", f"is not an option of {names}; known: {sorted(accepted)}.")
    return options


def _positive(value: Any, key: str, source: str) -> int:
    number = _integer(value, key, source)
    if number < 1:
        raise _fail(source, key, f"must be a positive integer. Got {number!r} instead.")
    return number


def _mds(raw: Any, source: str) -> dict[str, Any]:
    from ..discovery.mds import most_discriminative_stimuli

    section = _mapping(raw, "mds", source, _SECTIONS["mds"])
    return {
        "units": _units(_required(section, "units", "mds", source), "mds.units", source),
        "n_clusters": _positive(_required(section, "n_clusters", "mds", source), "mds.n_clusters", source),
        "image_size": _positive(section.get("image_size", 224), "mds.image_size", source),
        "options": _options(section.get("options"), "mds.options", source, (most_discriminative_stimuli,)),
    }


def _braindive(raw: Any, source: str, resolve: Callable[[Any], Path]) -> dict[str, Any]:
    from ..discovery.braindive import brain_guided_images
    from ..discovery.diffusion import _SCHEDULER_NAMES, load_diffusion_pipeline

    section = _mapping(raw, "braindive", source, _SECTIONS["braindive"])
    pipeline = _string(_required(section, "pipeline", "braindive", source), "braindive.pipeline", source)
    if pipeline != "small" and (pipeline.startswith((".", "/", "~")) or resolve(pipeline).exists()):
        pipeline = str(resolve(pipeline))  # a local folder; anything else is a hub id
    seeds = section.get("seeds", 8)
    if isinstance(seeds, (list, tuple)):
        seeds = [_integer(s, "braindive.seeds", source) for s in seeds]
    else:
        seeds = list(range(_positive(seeds, "braindive.seeds", source)))
    image_size = section.get("image_size")
    return {
        "units": _units(_required(section, "units", "braindive", source), "braindive.units", source),
        "pipeline": pipeline,
        "scheduler": _string(section.get("scheduler", "dpm"), "braindive.scheduler", source,
                             choices=tuple(sorted(_SCHEDULER_NAMES))),
        "seeds": seeds,
        "top": _positive(section.get("top", min(len(seeds), 16)), "braindive.top", source),
        "image_size": None if image_size is None else _positive(image_size, "braindive.image_size", source),
        "unguided": _boolean(section.get("unguided", True), "braindive.unguided", source),
        "natural_top_k": _positive(section.get("natural_top_k", 8), "braindive.natural_top_k", source),
        "pipeline_options": _options(section.get("pipeline_options"), "braindive.pipeline_options", source,
                                     (load_diffusion_pipeline,)),
        "options": _options(section.get("options"), "braindive.options", source, (brain_guided_images,)),
    }


def _captions(raw: Any, source: str, resolve: Callable[[Any], Path]) -> dict[str, Any]:
    from ..discovery.captioner import PrefixCaptioner
    from ..discovery.lavca import lavca_captions
    from ..discovery.voxel_captions import brainscuba_captions

    section = _mapping(raw, "captions", source, _SECTIONS["captions"])
    captioner = _string(section.get("captioner", "small"), "captions.captioner", source)
    if captioner != "small" and resolve(captioner).exists():
        captioner = str(resolve(captioner))
    methods = section.get("methods", list(_CAPTION_METHODS))
    if not isinstance(methods, (list, tuple)) or not methods or any(m not in _CAPTION_METHODS for m in methods):
        raise _fail(source, "captions.methods", f"must list some of {list(_CAPTION_METHODS)}. Got {methods!r} instead.")
    return {
        "units": _units(_required(section, "units", "captions", source), "captions.units", source),
        "captioner": captioner,
        "train": _options(section.get("train"), "captions.train", source, (PrefixCaptioner,)),
        "methods": tuple(methods),
        "brainscuba": _options(section.get("brainscuba"), "captions.brainscuba", source, (brainscuba_captions,)),
        "lavca": _options(section.get("lavca"), "captions.lavca", source, (lavca_captions,)),
    }


def is_discovery_config(path: str | Path) -> bool:
    """Whether a pipeline file is a discovery config (it names a ``study`` and no other ``kind``) rather than an encoding study."""
    raw = _read_yaml(Path(path))
    return isinstance(raw, dict) and "study" in raw and raw.get("kind", "discovery") == "discovery"


def discovery_config_from_dict(
    raw: Any, *, base_dir: Path | None = None, source: str = "config", check: bool = True, verbose: bool = False
) -> DiscoveryConfig:
    """Build a discovery config from a parsed YAML mapping, checking every key and value type.

    Parameters
    ----------
    raw : mapping
        The parsed file (see the module docstring).
    base_dir : path-like, optional
        Folder that relative paths are resolved against (default: the working directory).
    source : str
        Names the config in error messages (its file path).
    check, verbose
        Passed to :func:`~neurodec.pipelines.load_config` for the study's config.

    Raises
    ------
    ConfigError
        Naming ``source`` and the key at fault.
    """
    from .config import load_config

    raw = _mapping(raw, "top", source, _SECTIONS["top"])
    resolve = path_resolver(base_dir)
    study_path = resolve(_string(_required(raw, "study", "top level", source), "study", source))
    if not study_path.is_file():
        raise _fail(source, "study", f"names {study_path}, which does not exist; it must be an encoding study config.")
    study = load_config(study_path, check=check, verbose=verbose)
    model = _string(_required(raw, "model", "top level", source), "model", source)
    known = [f"{bb.name}/{layer}" for bb in study.backbones for layer in (bb.layers or ())]
    if known and model not in known:
        raise _fail(source, "model", f"must be one of the study's models {known}. Got {model!r} instead.")
    subjects = _subjects(raw["subjects"], source) if "subjects" in raw else study.dataset.subjects
    missing = [s for s in subjects if s not in study.dataset.subjects]
    if missing:
        raise _fail(source, "subjects", f"{missing} are not subjects of the study {study_path} ({list(study.dataset.subjects)}).")
    outputs = _mapping(raw.get("outputs"), "outputs", source, _SECTIONS["outputs"])
    if "root" in outputs:
        outputs["root"] = resolve(_string(str(outputs["root"]), "outputs.root", source))
    if "report" in outputs:
        outputs["report"] = _boolean(outputs["report"], "outputs.report", source)
    config = DiscoveryConfig(
        name=_string(raw.get("name", "discovery"), "name", source),
        study=study,
        model=model,
        subjects=tuple(subjects),
        outputs=outputs,
        mds=_mds(raw["mds"], source) if raw.get("mds") is not None else None,
        braindive=_braindive(raw["braindive"], source, resolve) if raw.get("braindive") is not None else None,
        captions=_captions(raw["captions"], source, resolve) if raw.get("captions") is not None else None,
        device=_device(raw.get("device", study.device), source),
        random_state=_integer(raw.get("random_state", study.random_state), "random_state", source),
        source=source,
    )
    if not config.methods:
        raise _fail(source, "top level", f"names no method to run; add one or more sections of {list(METHODS)}.")
    return config


def load_discovery_config(path: str | Path, *, check: bool = True, verbose: bool = False) -> DiscoveryConfig:
    """Read a discovery pipeline config (YAML) and check it, and its encoding study, before any work.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ConfigError
        Naming the file and the key at fault.
    """
    path = Path(path)
    raw = _read_yaml(path)
    return discovery_config_from_dict(raw, base_dir=path.resolve().parent, source=str(path), check=check, verbose=verbose)
