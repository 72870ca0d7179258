"""Pipeline configs: parsing, path resolution, YAML 1.2 numbers and errors that name the file and key."""

from pathlib import Path

import numpy as np
import pytest

from neurodec.pipelines import ConfigError, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[2]


def _minimal(**overrides):
    raw = {
        "name": "study",
        "dataset": {"name": "nsd", "root": "data/nsd", "subjects": 1},
        "backbones": [{"name": "timm/resnet18", "weights": "random", "layers": ["layer1"]}],
    }
    raw.update(overrides)
    return raw


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    config = config_from_dict(_minimal(outputs={"root": "out"}), base_dir=tmp_path)
    assert config.dataset.root == tmp_path / "data" / "nsd"
    assert config.output_root == tmp_path / "out"
    assert config.dataset.subjects == (1,)
    assert config.backbones[0].layers == ("layer1",)
    assert not config.checked


def test_shipped_nsd_config_parses():
    config = load_config(REPO / "pipelines" / "encoding_nsd.yaml", check=False)
    assert config.dataset.name == "nsd" and config.dataset.subjects == (1, 2, 5, 7)
    assert [b.name for b in config.backbones] == ["timm/resnet50"] + ["open_clip/ViT-B-32:laion2b_s34b_b79k"] * 2
    assert config.model["alphas"] == [1e1, 1e2, 1e3, 1e4, 1e5, 1e6]  # written 1e1 ... in the file
    assert config.outputs["atlas"] == ["prf-visualrois", "floc-faces", "floc-places", "streams"]


def test_yaml_numbers_are_read_as_yaml_1_2(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(
        "dataset: {name: nsd, root: data}\n"
        "backbones: [{name: timm/resnet18}]\n"
        "model: {alphas: [1e1, 1E-2, 2.5e+3, .5, 1.0, 3], cv: 3}\n"
    )
    alphas = load_config(path, check=False).model["alphas"]
    assert alphas == [10.0, 0.01, 2500.0, 0.5, 1.0, 3] and all(isinstance(a, (int, float)) for a in alphas)


@pytest.mark.parametrize(
    "raw, message",
    [
        (_minimal(extra=1), r"unknown key\(s\) \['extra'\] in the top level"),
        ({"dataset": {"name": "nsd", "root": "x"}}, "the top level needs a 'backbones' entry"),
        (_minimal(dataset={"root": "x"}), "'dataset' needs a 'name' entry"),
        (_minimal(dataset={"name": "nds", "root": "x"}), r"'dataset.name' must be one of \[.*'nsd'.*\]. Got 'nds'"),
        (_minimal(dataset={"name": "nsd", "root": "x", "subjects": [1, 1]}), "'dataset.subjects' lists a subject twice"),
        (_minimal(dataset={"name": "nsd", "root": "x", "subjects": [1.5]}), "'dataset.subjects' must be a subject"),
        (_minimal(dataset={"name": "nsd", "root": "x", "options": [1]}), "'dataset.options' must be a mapping"),
        (_minimal(backbones=[{"name": "a", "pool": "avg"}]), r"unknown key\(s\) \['pool'\] in 'backbones\[0\]'"),
        (_minimal(backbones=[{"name": "a", "pooling": "mean"}]), r"'backbones\[0\].pooling' must be one of"),
        (_minimal(backbones=[{"name": "a", "layers": [1]}]), r"'backbones\[0\].layers' must be a name or a"),
        (_minimal(backbones=[{"name": "a", "preprocess": "imagenet"}]), r"'backbones\[0\].preprocess' must be a map"),
        (_minimal(backbones=[{"name": "a", "preprocess": {"resize": 256, "mena": [0.5] * 3}}]),
         r"Unknown key 'mena' .*backbones\[0\].preprocess.*Did you mean 'mean'"),
        (_minimal(backbones=[{"name": "a", "preprocess": {"resize": 256, "crop": "227px"}}]),
         r"The 'crop' key of backbones\[0\].preprocess must be"),
        (_minimal(backbones=[{"name": "a", "weights": "random", "strip_prefix": "features."}]),
         r"'backbones\[0\].strip_prefix' applies to a checkpoint file"),
        (_minimal(backbones=[]), "'backbones' must list at least one backbone"),
        (_minimal(model={"alpha": [1.0]}), r"unknown key\(s\) \['alpha'\] in 'model'"),
        (_minimal(model={"device": "cpu"}), r"device and random_state are top-level keys"),
        (_minimal(model={"cv": 1}), r"'model': The 'cv' parameter of EncodingModel must be"),
        (_minimal(model={"banded": "yes"}), r"'model': The 'banded' parameter of EncodingModel must be"),
        (_minimal(model={"alphas": ["1e1"]}), r"'model.alphas' must be positive numbers"),
        (_minimal(model={"alphas": [-1.0]}), r"'model.alphas' must be positive numbers"),
        (_minimal(outputs={"figures": "yes"}), r"'outputs.figures' must be true or false"),
        (_minimal(scheduler="cluster"), r"'scheduler' must be null \(no cluster\), 'local' or a scheduler address"),
        (_minimal(device="gpu"), r"'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got 'gpu'"),
        (_minimal(random_state="0"), r"'random_state' must be an integer"),
    ],
)
def test_bad_configs_name_the_source_and_key(tmp_path, raw, message):
    with pytest.raises(ConfigError, match=message) as info:
        config_from_dict(raw, base_dir=tmp_path, source="my/study.yaml")
    assert str(info.value).startswith("my/study.yaml")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_outputs_take_one_atlas_or_a_list(tmp_path):
    def atlas(outputs):
        return config_from_dict(_minimal(outputs=outputs), base_dir=tmp_path).outputs["atlas"]

    assert atlas({"atlas": "streams"}) == ["streams"]
    assert atlas({"atlas": ["prf-visualrois", "floc-faces"]}) == ["prf-visualrois", "floc-faces"]
    assert atlas({"atlases": ["floc-places"]}) == ["floc-places"]
    assert atlas({}) is None
    with pytest.raises(ConfigError, match="both 'atlas' and 'atlases'"):
        atlas({"atlas": "a", "atlases": ["b"]})
    with pytest.raises(ConfigError, match=r"'outputs.atlas' must be a name or a non-empty list of names.*Got \{'a': 1\}"):
        atlas({"atlas": {"a": 1}})


def test_model_section_builds_the_estimator_the_pipeline_fits(tmp_path):
    from neurodec.encoding import EncodingModel

    config = config_from_dict(_minimal(model={"alphas": [1.0, 10.0], "cv": 3, "banded": False}), base_dir=tmp_path)
    model = EncodingModel(**config.model)
    np.testing.assert_array_equal(model.alphas, [1.0, 10.0])
    assert model.cv == 3


def test_backbone_preprocess_and_checkpoint_prefix(tmp_path):
    from neurodec.backbones import Preprocess

    raw = _minimal(backbones=[{"name": "torchvision/resnet152", "weights": "ckpt/resmem.pt", "strip_prefix": "features.",
                               "preprocess": {"resize": [256, 256], "crop": 227, "interpolation": "bilinear",
                                              "mean": None, "std": None}}])
    backbone = config_from_dict(raw, base_dir=tmp_path).backbones[0]
    assert backbone.preprocess == Preprocess(resize=(256, 256), crop=227, interpolation="bilinear", mean=None, std=None)
    assert backbone.strip_prefix == "features." and backbone.weights == str(tmp_path / "ckpt" / "resmem.pt")
