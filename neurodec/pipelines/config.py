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
    model: {alphas: [1.0e+1, 1.0e+2, 1.0e+3, 1.0e+4, 1.0e+5], cv: 5}
    outputs: {root: derivatives, figures: true, report: true}
    scheduler: null   # or "local", or a Dask scheduler address "tcp://host:8786"

Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["BackboneConfig", "DatasetConfig", "EncodingStudyConfig", "config_from_dict", "load_config"]


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
    """One backbone and how to extract its features."""

    name: str
    weights: str = "pretrained"
    layers: tuple[str, ...] | None = None
    pooling: str = "avg"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EncodingStudyConfig:
    """A whole encoding study (see the module docstring for the YAML form)."""

    name: str
    dataset: DatasetConfig
    backbones: tuple[BackboneConfig, ...]
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    scheduler: str | None = None
    device: str = "auto"
    seed: int = 0

    @property
    def output_root(self) -> Path:
        return Path(self.outputs.get("root", "derivatives"))


def _require(section: dict[str, Any], key: str, where: str, source: str) -> Any:
    if key not in section:
        raise ValueError(f"{source}: the {where} section needs a {key!r} entry.")
    return section[key]


def _known_keys(section: dict[str, Any], allowed: set[str], where: str, source: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown} in the {where} section; allowed: {sorted(allowed)}.")


def config_from_dict(raw: dict[str, Any], *, base_dir: Path | None = None, source: str = "config") -> EncodingStudyConfig:
    """Build and validate a config from a parsed YAML mapping."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}.")
    _known_keys(raw, {"name", "dataset", "backbones", "model", "outputs", "scheduler", "device", "seed"}, "top", source)
    base_dir = base_dir or Path.cwd()

    def resolve(path: Any) -> Path:
        path = Path(str(path)).expanduser()
        return path if path.is_absolute() else base_dir / path

    ds = dict(_require(raw, "dataset", "top", source))
    _known_keys(ds, {"name", "root", "subjects", "options", "stimulus_options"}, "dataset", source)
    subjects = ds.get("subjects", [1])
    dataset = DatasetConfig(
        name=str(_require(ds, "name", "dataset", source)),
        root=resolve(_require(ds, "root", "dataset", source)),
        subjects=tuple(subjects if isinstance(subjects, (list, tuple)) else [subjects]),
        options=dict(ds.get("options") or {}),
        stimulus_options=dict(ds.get("stimulus_options") or {}),
    )
    backbones = []
    for i, bb in enumerate(_require(raw, "backbones", "top", source) or []):
        where = f"backbones[{i}]"
        _known_keys(bb, {"name", "weights", "layers", "pooling", "options"}, where, source)
        layers = bb.get("layers")
        weights = str(bb.get("weights", "pretrained"))
        if weights not in ("pretrained", "random"):
            weights = str(resolve(weights))
        backbones.append(
            BackboneConfig(
                name=str(_require(bb, "name", where, source)),
                weights=weights,
                layers=None if layers is None else tuple(layers),
                pooling=str(bb.get("pooling", "avg")),
                options=dict(bb.get("options") or {}),
            )
        )
    if not backbones:
        raise ValueError(f"{source}: the 'backbones' section must list at least one backbone.")
    outputs = dict(raw.get("outputs") or {})
    outputs["root"] = resolve(outputs.get("root", "derivatives"))
    return EncodingStudyConfig(
        name=str(raw.get("name", "encoding")),
        dataset=dataset,
        backbones=tuple(backbones),
        model=dict(raw.get("model") or {}),
        outputs=outputs,
        scheduler=raw.get("scheduler"),
        device=str(raw.get("device", "auto")),
        seed=int(raw.get("seed", 0)),
    )


def load_config(path: str | Path) -> EncodingStudyConfig:
    """Read and validate a pipeline config file (YAML)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Pipeline config {path} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"Pipeline config {path} is not valid YAML: {exc}") from exc
    return config_from_dict(raw, base_dir=path.resolve().parent, source=str(path))
