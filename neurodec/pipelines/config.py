"""Pipeline configuration: a YAML file names a dataset, backbones, a model and outputs.

Example (``pipelines/encoding_nsd.yaml``)::

    name: nsd-encoding
    dataset:
      name: nsd
      root: /data/nsd
      subjects: [1, 2]
      options: {space: func1pt8mm, roi: nsdgeneral}
    backbones:
      - name: timm/resnet50
        weights: pretrained
        layers: [layer1, layer2, layer3, layer4]
        pooling: avg
        preprocess: {resize: 256, crop: 224, interpolation: bilinear}   # optional; mean/std null: no normalization
    model: {alphas: [1e1, 1e2, 1e3, 1e4, 1e5], cv: 5}
    outputs: {root: derivatives, atlas: [prf-visualrois, floc-faces, floc-places], figures: true, report: true,
              data_description: "NSD (Allen et al. 2022), subjects 1 and 2, 1.8 mm betas"}   # for the Methods
    scheduler: null   # or "local", or a Dask scheduler address "tcp://host:8786"
    device: auto
    random_state: 0

Every section's keys and value types are checked when the file is read, and
the ``model`` section by constructing :class:`~neurodec.encoding.EncodingModel`
and validating its parameters; errors name the file and the key. Numbers
follow YAML 1.2, so ``1e1`` is the float 10 (YAML 1.1 reads it as a string).
Relative paths are resolved against the config file's folder. ``outputs.atlas``
(or ``outputs.atlases``) names one ROI atlas or a list of them; it is stored as
a list under ``outputs["atlas"]``.

:func:`load_config` then checks the config against the data and the models
(:func:`~neurodec.pipelines.checks.check_study`): the dataset root, subjects
and atlases exist, the loader accepts the options, and every backbone has the
layers named and can be pooled as asked. All of this happens before any work.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BackboneConfig",
    "ConfigError",
    "DatasetConfig",
    "EncodingStudyConfig",
    "config_from_dict",
    "load_config",
]


class ConfigError(ValueError):
    """A pipeline config that cannot run; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """Which dataset and subjects; ``options`` go to the dataset's response loader."""

    name: str
    root: Path
    subjects: tuple[Any, ...] = (1,)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    stimulus_options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """One backbone and how to extract its features.

    ``weights`` is "pretrained", "random" or a checkpoint path;
    ``strip_prefix`` loads a checkpoint's keys under that prefix;
    ``preprocess`` (from a mapping with the keys of
    :class:`neurodec.backbones.Preprocess`) replaces the registry's
    preprocessing; ``options`` go to :func:`neurodec.backbones.extract_features`.
    """

    name: str
    weights: str = "pretrained"
    layers: tuple[str, ...] | None = None
    pooling: str = "avg"
    preprocess: Any = None
    strip_prefix: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EncodingStudyConfig:
    """A whole encoding study (see the module docstring for the YAML form).

    ``source`` names where the config came from (its file) in error messages;
    ``checked`` records that :func:`~neurodec.pipelines.checks.check_study`
    passed, so a run does not repeat the checks.
    """

    name: str
    dataset: DatasetConfig
    backbones: tuple[BackboneConfig, ...]
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    scheduler: str | None = None
    device: str = "auto"
    random_state: int = 0
    source: str = "config"
    checked: bool = dataclasses.field(default=False, compare=False)

    @property
    def output_root(self) -> Path:
        return Path(self.outputs.get("root", "derivatives"))


_SECTIONS = {
    "top": {"name", "dataset", "backbones", "model", "outputs", "scheduler", "device", "random_state"},
    "dataset": {"name", "root", "subjects", "options", "stimulus_options"},
    "backbone": {"name", "weights", "layers", "pooling", "preprocess", "strip_prefix", "options"},
    "outputs": {"root", "atlas", "atlases", "figures", "report", "data_description"},
}


def _fail(source: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: '{key}' {message}")


def _mapping(value: Any, key: str, source: str, allowed: set[str] | None = None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(source, key, f"must be a mapping (key: value lines). Got {type(value).__name__} {value!r} instead.")
    if allowed is not None:
        unknown = sorted(set(map(str, value)) - allowed)
        if unknown:
            where = "the top level" if key == "top" else f"'{key}'"
            raise ConfigError(f"{source}: unknown key(s) {unknown} in {where}; allowed: {sorted(allowed)}.")
    return dict(value)


def _string(value: Any, key: str, source: str, *, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(source, key, f"must be a non-empty string. Got {value!r} instead.")
    if choices is not None and value not in choices:
        raise _fail(source, key, f"must be one of {list(choices)}. Got {value!r} instead.")
    return value


def _boolean(value: Any, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, key, f"must be true or false. Got {value!r} instead.")
    return value


def _integer(value: Any, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(source, key, f"must be an integer. Got {value!r} instead.")
    return value


def _string_list(value: Any, key: str, source: str, example: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(a, str) and a for a in items):
        raise _fail(source, key, f"must be a name or a non-empty list of names, e.g. {example}. Got {value!r} instead.")
    return list(items)


def _required(section: dict[str, Any], key: str, where: str, source: str) -> Any:
    if key not in section:
        place = "the top level" if where == "top level" else f"'{where}'"
        raise ConfigError(f"{source}: {place} needs a '{key}' entry.")
    return section[key]


def _device(value: Any, source: str) -> str:
    device = _string(value, "device", source)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", device):
        raise _fail(source, "device", f"must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead.")
    return device


def _scheduler(value: Any, source: str) -> str | None:
    if value is None:
        return None
    scheduler = _string(value, "scheduler", source)
    if scheduler != "local" and not re.fullmatch(r"[a-z]+://\S+", scheduler):
        raise _fail(
            source, "scheduler",
            f"must be null (no cluster), 'local' or a scheduler address like 'tcp://host:8786'. Got {scheduler!r}.",
        )
    return scheduler


def _subjects(value: Any, source: str) -> tuple[Any, ...]:
    subjects = value if isinstance(value, (list, tuple)) else [value]
    if not subjects or not all(isinstance(s, (int, str)) and not isinstance(s, bool) for s in subjects):
        raise _fail(source, "dataset.subjects", f"must be a subject or a non-empty list of subjects (integers or "
                    f"names). Got {value!r} instead.")
    if len(set(subjects)) != len(subjects):
        raise _fail(source, "dataset.subjects", f"lists a subject twice: {list(subjects)}.")
    return tuple(subjects)


def _model(value: Any, source: str) -> dict[str, Any]:
    """Validate the model section by constructing the estimator and checking its parameters."""
    from sklearn.utils._param_validation import InvalidParameterError

    from ..encoding import EncodingModel

    model = _mapping(value, "model", source)
    allowed = set(EncodingModel().get_params()) - {"device", "random_state", "verbose"}
    unknown = sorted(set(model) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in 'model'; allowed: {sorted(allowed)} "
                          "(device and random_state are top-level keys).")
    try:
        EncodingModel(**model)._validate_params()
    except InvalidParameterError as exc:
        raise ConfigError(f"{source}: 'model': {exc}") from None
    alphas = model.get("alphas")
    if alphas is not None:
        ok = isinstance(alphas, (list, tuple)) and alphas and all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and np.isfinite(a) and a > 0 for a in alphas
        )
        if not ok:
            raise _fail(source, "model.alphas", f"must be positive numbers, e.g. [1e1, 1e2, 1e3]. Got {alphas!r} "
                        "instead.")
    return model


def _backbone(raw: Any, i: int, source: str, resolve: Any) -> BackboneConfig:
    from ..backbones.pooling import POOLINGS
    from ..backbones.transforms import preprocess_from_dict

    where = f"backbones[{i}]"
    bb = _mapping(raw, where, source, _SECTIONS["backbone"])
    weights = _string(bb.get("weights", "pretrained"), f"{where}.weights", source)
    if weights not in ("pretrained", "random"):
        weights = str(resolve(weights))
    layers = bb.get("layers")
    preprocess = bb.get("preprocess")
    if preprocess is not None:
        if not isinstance(preprocess, Mapping):
            raise _fail(source, f"{where}.preprocess", f"must be a mapping (resize, crop, interpolation, mean, std) "
                        f"or null. Got {preprocess!r} instead.")
        try:
            preprocess = preprocess_from_dict(preprocess, context=f"{where}.preprocess")
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: {exc}") from None
    strip_prefix = bb.get("strip_prefix")
    if strip_prefix is not None and weights in ("pretrained", "random"):
        raise _fail(source, f"{where}.strip_prefix", f"applies to a checkpoint file given as 'weights'; weights is "
                    f"{weights!r}.")
    return BackboneConfig(
        name=_string(_required(bb, "name", where, source), f"{where}.name", source),
        weights=weights,
        layers=None if layers is None else tuple(_string_list(layers, f"{where}.layers", source, "[layer1, layer4]")),
        pooling=_string(bb.get("pooling", "avg"), f"{where}.pooling", source, choices=POOLINGS),
        preprocess=preprocess,
        strip_prefix=None if strip_prefix is None else _string(strip_prefix, f"{where}.strip_prefix", source),
        options=_mapping(bb.get("options"), f"{where}.options", source),
    )


def _outputs(value: Any, source: str, resolve: Any) -> dict[str, Any]:
    outputs = _mapping(value, "outputs", source, _SECTIONS["outputs"])
    if "atlas" in outputs and "atlases" in outputs:
        raise ConfigError(f"{source}: 'outputs' has both 'atlas' and 'atlases'; give the list under one of them.")
    atlas = outputs.pop("atlases", outputs.get("atlas"))
    example = "[prf-visualrois, floc-faces]"
    return {
        "root": resolve(outputs.get("root", "derivatives")),
        "atlas": None if atlas is None else _string_list(atlas, "outputs.atlas", source, example),
        "figures": _boolean(outputs.get("figures", True), "outputs.figures", source),
        "report": _boolean(outputs.get("report", True), "outputs.report", source),
        "data_description": None if outputs.get("data_description") is None
        else _string(outputs["data_description"], "outputs.data_description", source),
    }


def path_resolver(base_dir: Path | None) -> Any:
    """A function making a config's relative paths absolute against ``base_dir`` (default: the working directory)."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()

    def resolve(path: Any) -> Path:
        path = Path(str(path)).expanduser()
        # normpath, not resolve(): "../data" reads cleanly in messages while symlinks stay as given.
        return path if path.is_absolute() else Path(os.path.normpath(base / path))

    return resolve


def _stimulus_options(value: Any, source: str, resolve: Any) -> dict[str, Any]:
    """The stimulus loader's options; caption file paths (a path, a list or a split -> path mapping) resolved."""
    options = _mapping(value, "dataset.stimulus_options", source)
    captions = options.get("captions")
    if isinstance(captions, str):
        options["captions"] = resolve(captions)
    elif isinstance(captions, (list, tuple)):
        options["captions"] = [resolve(c) for c in captions]
    elif isinstance(captions, dict):
        options["captions"] = {split: resolve(c) for split, c in captions.items()}
    return options


def config_from_dict(raw: Any, *, base_dir: Path | None = None, source: str = "config") -> EncodingStudyConfig:
    """Build a config from a parsed YAML mapping, checking every key and value type.

    Parameters
    ----------
    raw : mapping
        The parsed file (see the module docstring).
    base_dir : path-like, optional
        Folder that relative paths are resolved against (default: the working directory).
    source : str
        Names the config in error messages (its file path).

    Returns
    -------
    EncodingStudyConfig
        Not yet checked against the data (see :func:`load_config`).

    Raises
    ------
    ConfigError
        Naming ``source`` and the key at fault.
    """
    raw = _mapping(raw, "top", source, _SECTIONS["top"])
    resolve = path_resolver(base_dir)
    ds = _mapping(_required(raw, "dataset", "top level", source), "dataset", source, _SECTIONS["dataset"])
    from ..data.registry import list_datasets

    dataset = DatasetConfig(
        name=_string(_required(ds, "name", "dataset", source), "dataset.name", source, choices=tuple(list_datasets())),
        root=resolve(_string(str(_required(ds, "root", "dataset", source)), "dataset.root", source)),
        subjects=_subjects(ds.get("subjects", [1]), source),
        options=_mapping(ds.get("options"), "dataset.options", source),
        stimulus_options=_stimulus_options(ds.get("stimulus_options"), source, resolve),
    )
    listed = _required(raw, "backbones", "top level", source)
    if not isinstance(listed, (list, tuple)) or not listed:
        raise _fail(source, "backbones", f"must list at least one backbone (- name: ...). Got {listed!r} instead.")
    backbones = tuple(_backbone(bb, i, source, resolve) for i, bb in enumerate(listed))
    return EncodingStudyConfig(
        name=_string(raw.get("name", "encoding"), "name", source),
        dataset=dataset,
        backbones=backbones,
        model=_model(raw.get("model"), source),
        outputs=_outputs(raw.get("outputs"), source, resolve),
        scheduler=_scheduler(raw.get("scheduler"), source),
        device=_device(raw.get("device", "auto"), source),
        random_state=_integer(raw.get("random_state", 0), "random_state", source),
        source=source,
    )


def _yaml_loader() -> type:
    """A safe YAML loader that reads numbers as YAML 1.2 does (``1e1`` is a float, not a string)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # PyYAML follows YAML 1.1, whose float pattern needs a dot ("1.0e+1"); users write 1e1.
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    return Loader


def _read_yaml(path: Path) -> Any:
    """The parsed content of a pipeline YAML file (numbers as YAML 1.2 reads them)."""
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"Pipeline config {path} does not exist.")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader())  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Pipeline config {path} is not valid YAML: {exc}") from exc


def _check_arguments(options: dict[str, Any], func: Any, key: str, source: str,
                     reserved: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """``options`` if all are arguments of ``func`` other than ``reserved``; else an error naming ``key``."""
    import inspect

    params = inspect.signature(func).parameters
    allowed = set(params) - set(reserved)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise _fail(source, key, f"has unknown argument(s) {unknown}; allowed: {sorted(allowed)}.")
    return options


def load_config(path: str | Path, *, check: bool = True, verbose: bool = False) -> EncodingStudyConfig:
    """Read a pipeline config file (YAML) and check it before any work.

    Parameters
    ----------
    path : path-like
        The YAML file.
    check : bool
        Also check the config against the dataset and the backbones
        (:func:`~neurodec.pipelines.checks.check_study`): reads the dataset's
        index files and builds each backbone with random weights for one
        forward pass of a blank image.
    verbose : bool
        Log what the checks found.

    Returns
    -------
    EncodingStudyConfig

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ConfigError
        Naming the file and the key at fault.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Pipeline config {path} does not exist.")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader())  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Pipeline config {path} is not valid YAML: {exc}") from exc
    config = config_from_dict(raw, base_dir=path.resolve().parent, source=str(path))
    if check:
        from .checks import check_study

        config = check_study(config, verbose=verbose)
    return config
