"""Decoding pipeline configuration: which encoding study and embedding; decoder, retrieval, reconstruction, captions.

Example (``pipelines/decoding_demo.yaml``)::

    name: demo-decoding
    kind: decoding                     # marks a decoding study (a discovery config has no kind)
    study: encoding_demo.yaml          # the encoding study: dataset, subjects, backbones, feature cache (reused)
    target: timm/resnet18/layer4       # the embedding decoded: one of its "<backbone>/<layer>" features
    subjects: [1]                      # default: the study's subjects
    decoder: {restandardize: true}     # LinearDecoder options
    retrieval: {n_way: 300, n_draws: 30}
    reconstruction:                    # optional: images from the decoded embeddings
      pipeline: small                  # or a Stable unCLIP hub id / local folder
      n_images: 8                      # the first test images
      low_level: true                  # also decode the pipeline VAE's latents and start from them (img2img)
      prompts: true                    # condition on the brain captions (needs captions:)
      options: {num_inference_steps: 20, strength: 0.75}
      feature_metrics: [alexnet2, alexnet5, inception, clip, efficientnet, swav]   # on the reconstructions
      feature_weights: pretrained      # "random" for plumbing checks, or a local weights file
    captions:                          # optional: brain captions and the nearest-training-caption baseline
      captioner: small                 # "small", a GPT-2 hub id / folder to train, or a saved PrefixCaptioner folder
      train: {epochs: 30}
      metrics: [BLEU-1, ROUGE-L, CIDEr]
    outputs: {root: derivatives}       # default: the study's outputs root
    device: auto
    random_state: 0

Every key and value type is checked when the file is read, ``options``
against the signature of the function they go to; errors name the file and
the key. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import dataclasses
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
from .discovery_config import _options, _positive

__all__ = ["DecodingConfig", "decoding_config_from_dict", "is_decoding_config", "load_decoding_config"]

_SECTIONS = {
    "top": {"name", "kind", "study", "target", "subjects", "decoder", "retrieval", "reconstruction", "captions",
            "outputs", "device", "random_state"},
    "retrieval": {"n_way", "n_draws"},
    "reconstruction": {"pipeline", "scheduler", "n_images", "image_size", "low_level", "prompts", "pipeline_options",
                       "options", "feature_metrics", "feature_weights"},
    "captions": {"captioner", "train", "generate", "metrics"},
    "outputs": {"root", "report", "data_description"},
}
_PIPELINE_SETS = {"pipe", "image_embeds", "init_latents", "init_images", "prompts", "random_state", "verbose"}


@dataclasses.dataclass(frozen=True)
class DecodingConfig:
    """A decoding study (see the module docstring for the YAML form).

    ``study`` is the checked encoding study whose data and features are
    reused; ``reconstruction`` and ``captions`` are plain mappings (None when
    not run).
    """

    name: str
    study: EncodingStudyConfig
    target: str
    subjects: tuple[Any, ...]
    decoder: dict[str, Any]
    retrieval: dict[str, int]
    outputs: dict[str, Any]
    reconstruction: dict[str, Any] | None = None
    captions: dict[str, Any] | None = None
    device: str = "auto"
    random_state: int = 0
    source: str = "config"

    @property
    def output_root(self) -> Path:
        return Path(self.outputs.get("root", self.study.output_root))


def _local_or_hub(value: str, resolve: Any) -> str:
    """A path that exists (or starts like one) becomes absolute; anything else is a hub id."""
    if value != "small" and (value.startswith((".", "/", "~")) or resolve(value).exists()):
        return str(resolve(value))
    return value


def _reconstruction(raw: Any, source: str, resolve: Any) -> dict[str, Any]:
    from ..decoding.reconstruction import load_reconstruction_pipeline, reconstruct_images
    from ..discovery.diffusion import _SCHEDULER_NAMES

    section = _mapping(raw, "reconstruction", source, _SECTIONS["reconstruction"])
    options = _options(section.get("options"), "reconstruction.options", source, (reconstruct_images,))
    clash = sorted(set(options) & _PIPELINE_SETS)
    if clash:
        raise _fail(source, f"reconstruction.options.{clash[0]}", "is set by the pipeline itself.")
    pipeline_options = _options(section.get("pipeline_options"), "reconstruction.pipeline_options", source,
                                (load_reconstruction_pipeline,))
    from ..metrics.features import FEATURE_METRICS

    feature_metrics = section.get("feature_metrics", [])
    if not isinstance(feature_metrics, (list, tuple)) or any(m not in FEATURE_METRICS for m in feature_metrics):
        raise _fail(source, "reconstruction.feature_metrics", f"must list some of {sorted(FEATURE_METRICS)}. "
                    f"Got {feature_metrics!r} instead.")
    weights = _string(section.get("feature_weights", "pretrained"), "reconstruction.feature_weights", source)
    return {
        "feature_metrics": tuple(feature_metrics),
        "feature_weights": weights if weights in ("pretrained", "random") else str(resolve(weights)),
        "pipeline": _local_or_hub(_string(_required(section, "pipeline", "reconstruction", source),
                                          "reconstruction.pipeline", source), resolve),
        "scheduler": _string(section.get("scheduler", "dpm"), "reconstruction.scheduler", source,
                             choices=tuple(sorted(_SCHEDULER_NAMES))),
        "n_images": _positive(section.get("n_images", 16), "reconstruction.n_images", source),
        "image_size": _positive(section.get("image_size", 64), "reconstruction.image_size", source),
        "low_level": _boolean(section.get("low_level", True), "reconstruction.low_level", source),
        "prompts": _boolean(section.get("prompts", False), "reconstruction.prompts", source),
        "pipeline_options": pipeline_options,
        "options": options,
    }


def _captions(raw: Any, source: str, resolve: Any) -> dict[str, Any]:
    from ..discovery.captioner import PrefixCaptioner
    from ..metrics.captions import CAPTION_PROTOCOLS

    section = _mapping(raw, "captions", source, _SECTIONS["captions"])
    metrics = section.get("metrics", ["BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"])
    coco = CAPTION_PROTOCOLS["coco"]
    if not isinstance(metrics, (list, tuple)) or not metrics or any(m not in coco for m in metrics):
        raise _fail(source, "captions.metrics", f"must list some of the coco protocol's metrics {list(coco)}. "
                    f"Got {metrics!r} instead.")
    return {
        "captioner": _local_or_hub(_string(section.get("captioner", "small"), "captions.captioner", source), resolve),
        "train": _options(section.get("train"), "captions.train", source, (PrefixCaptioner,)),
        "generate": _options(section.get("generate"), "captions.generate", source, (PrefixCaptioner.generate,)),
        "metrics": tuple(metrics),
    }


def is_decoding_config(path: str | Path) -> bool:
    """Whether a pipeline file is a decoding study (``kind: decoding``)."""
    raw = _read_yaml(Path(path))
    return isinstance(raw, dict) and raw.get("kind") == "decoding"


def decoding_config_from_dict(
    raw: Any, *, base_dir: Path | None = None, source: str = "config", check: bool = True, verbose: bool = False
) -> DecodingConfig:
    """Build a decoding config from a parsed YAML mapping, checking every key and value type.

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

    Returns
    -------
    DecodingConfig

    Raises
    ------
    ConfigError
        Naming ``source`` and the key at fault.
    """
    from ..decoding.linear import LinearDecoder
    from .config import load_config

    raw = _mapping(raw, "top", source, _SECTIONS["top"])
    if raw.get("kind", "decoding") != "decoding":
        raise _fail(source, "kind", f"must be 'decoding' for a decoding study. Got {raw['kind']!r} instead.")
    resolve = path_resolver(base_dir)
    study_path = resolve(_string(_required(raw, "study", "top level", source), "study", source))
    if not study_path.is_file():
        raise _fail(source, "study", f"names {study_path}, which does not exist; it must be an encoding study config.")
    study = load_config(study_path, check=check, verbose=verbose)
    target = _string(_required(raw, "target", "top level", source), "target", source)
    known = [f"{bb.name}/{layer}" for bb in study.backbones for layer in (bb.layers or ())]
    if known and target not in known:
        raise _fail(source, "target", f"must be one of the study's features {known}. Got {target!r} instead.")
    subjects = _subjects(raw["subjects"], source) if "subjects" in raw else study.dataset.subjects
    missing = [s for s in subjects if s not in study.dataset.subjects]
    if missing:
        raise _fail(source, "subjects", f"{missing} are not subjects of the study {study_path} ({list(study.dataset.subjects)}).")
    retrieval = _mapping(raw.get("retrieval"), "retrieval", source, _SECTIONS["retrieval"])
    outputs = _mapping(raw.get("outputs"), "outputs", source, _SECTIONS["outputs"])
    if "root" in outputs:
        outputs["root"] = resolve(_string(str(outputs["root"]), "outputs.root", source))
    outputs["report"] = _boolean(outputs.get("report", True), "outputs.report", source)
    decoder = _options(raw.get("decoder"), "decoder", source, (LinearDecoder,))
    recon = raw.get("reconstruction")
    if isinstance(recon, dict) and recon.get("prompts") and raw.get("captions") is None:
        raise _fail(source, "reconstruction.prompts", "prompts the pipeline with the brain captions; add a captions section.")
    return DecodingConfig(
        name=_string(raw.get("name", "decoding"), "name", source),
        study=study,
        target=target,
        subjects=tuple(subjects),
        decoder=decoder,
        retrieval={"n_way": _positive(retrieval.get("n_way", 300), "retrieval.n_way", source),
                   "n_draws": _positive(retrieval.get("n_draws", 30), "retrieval.n_draws", source)},
        outputs=outputs,
        reconstruction=(_reconstruction(raw["reconstruction"], source, resolve)
                        if raw.get("reconstruction") is not None else None),
        captions=_captions(raw["captions"], source, resolve) if raw.get("captions") is not None else None,
        device=_device(raw.get("device", study.device), source),
        random_state=_integer(raw.get("random_state", study.random_state), "random_state", source),
        source=source,
    )


def load_decoding_config(path: str | Path, *, check: bool = True, verbose: bool = False) -> DecodingConfig:
    """Read a decoding pipeline config (YAML) and check it, and its encoding study, before any work.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ConfigError
        Naming the file and the key at fault.
    """
    path = Path(path)
    raw = _read_yaml(path)
    return decoding_config_from_dict(raw, base_dir=path.resolve().parent, source=str(path), check=check, verbose=verbose)
