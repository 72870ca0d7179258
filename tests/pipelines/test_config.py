"""Pipeline configs: parsing, path resolution and clear errors."""

from pathlib import Path

import pytest

from neurodec.pipelines import config_from_dict, load_config

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


def test_shipped_example_config_is_valid():
    config = load_config(REPO / "pipelines" / "encoding_nsd.yaml")
    assert config.dataset.name == "nsd" and config.dataset.subjects == (1, 2, 5, 7)
    assert [b.name for b in config.backbones] == ["timm/resnet50", "open_clip/ViT-B-32:laion2b_s34b_b79k"]


@pytest.mark.parametrize(
    "raw, message",
    [
        (_minimal(extra=1), r"unknown key\(s\) \['extra'\] in the top section"),
        ({"dataset": {"name": "nsd", "root": "x"}}, "needs a 'backbones' entry"),
        (_minimal(dataset={"root": "x"}), "dataset section needs a 'name' entry"),
        (_minimal(backbones=[{"name": "a", "pool": "avg"}]), r"unknown key\(s\) \['pool'\] in the backbones\[0\] section"),
        (_minimal(backbones=[]), "must list at least one backbone"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, raw, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(raw, base_dir=tmp_path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(bad)
