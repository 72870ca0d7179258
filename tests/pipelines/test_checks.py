"""check_study: a config is checked against the dataset and the backbones before any work."""

import pytest
import torch

from neurodec.data.fixtures.nsd import make_nsd_miniature
from neurodec.pipelines import ConfigError, check_study, config_from_dict


@pytest.fixture(scope="module")
def nsd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    make_nsd_miniature(root, random_state=0, n_subjects=2, formats=("hdf5",), surface=False)
    return root


def _config(root, *, dataset=None, backbone=None, outputs=None):
    raw = {
        "dataset": {"name": "nsd", "root": str(root), "subjects": [1, 2], "options": {"roi": "nsdgeneral"},
                    **(dataset or {})},
        "backbones": [{"name": "timm/resnet18", "weights": "random", "layers": ["layer1", "layer4"],
                       **(backbone or {})}],
        "outputs": {"atlas": ["prf-visualrois"], **(outputs or {})},
    }
    return config_from_dict(raw, source="study.yaml")


def test_a_valid_config_passes_and_is_marked_checked(nsd_root):
    config = _config(nsd_root)
    checked = check_study(config)
    assert checked.checked and not config.checked
    assert checked == config  # nothing else changes


@pytest.mark.parametrize(
    "dataset, outputs, message",
    [
        ({"root": "/nonexistent/nsd"}, None, r"'dataset.root' /nonexistent/nsd is not a folder.*config file's folder\)\.$"),
        ({"root": "/nonexistent/neurodec_demo/nsd"}, None,
         r"is not a folder.*run `neurodec demo` in /nonexistent first\.$"),
        ({"subjects": [1, 3]}, None, r"'dataset.subjects' lists \[3\], which have no file under .*found there: \[1, 2\]"),
        ({"options": {"space": "func1pt8mm", "zscore": True}}, None,
         r"'dataset.options' has option\(s\) \['zscore'\] that load_nsd does not take"),
        ({"stimulus_options": {"size": 3}}, None, r"'dataset.stimulus_options' has option\(s\) \['size'\]"),
        (None, {"atlas": ["streams"]}, r"atlas\(es\) \['streams'\] that subject 1 does not have.*its atlases: "
                                       r"\['floc-faces', 'nsdgeneral', 'prf-visualrois'\]"),
        ({"options": {"roi": "floc-bodies"}}, None, r"atlas\(es\) \['floc-bodies'\] that subject 1 does not have"),
        ({"options": {"rois": ["floc-faces"]}}, None,
         r"'outputs.atlas' names \['prf-visualrois'\], which 'dataset.options.rois' does not load"),
    ],
)
def test_dataset_problems_name_the_key(nsd_root, dataset, outputs, message):
    with pytest.raises(ConfigError, match=message) as info:
        check_study(_config(nsd_root, dataset=dataset, outputs=outputs))
    assert str(info.value).startswith("study.yaml: ")


@pytest.mark.parametrize(
    "backbone, message",
    [
        ({"name": "timm/resnet1"}, r"'backbones\[0\].name': Unknown backbone 'timm/resnet1'.*Close matches"),
        ({"layers": ["layer9"]}, r"'backbones\[0\]' \(timm/resnet18, layers \['layer9'\].*layer9"),
        ({"layers": ["fc"], "pooling": "cls"}, r"'backbones\[0\]'.*pooling 'cls'.*cannot be extracted"),
        ({"options": {"reduction": "pca", "n_components": 100, "grid": 1}},
         r"'backbones\[0\].options.n_components' is 100, more than the features of layer\(s\) \{'layer1': 64\}"),
        ({"options": {"pool": "avg"}}, r"'backbones\[0\].options' has option\(s\) \['pool'\] that extract_features"),
        ({"weights": "/nonexistent/resnet18.pth"}, r"'backbones\[0\].weights' /nonexistent/resnet18.pth does not exist"),
    ],
)
def test_backbone_problems_are_found_before_extraction(nsd_root, backbone, message):
    with pytest.raises(ConfigError, match=message):
        check_study(_config(nsd_root, backbone=backbone))


def test_a_local_checkpoint_is_checked_as_given(nsd_root, tmp_path):
    from neurodec.backbones import load

    path = tmp_path / "resnet18.pth"
    torch.save({"bogus." + k: v for k, v in load("timm/resnet18", weights="random").root.state_dict().items()}, path)
    with pytest.raises(ConfigError, match=r"'backbones\[0\]' \(timm/resnet18.*cannot be extracted"):
        check_study(_config(nsd_root, backbone={"weights": str(path)}))
