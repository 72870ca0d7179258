"""Registry sweep: every entry well-formed, curated names real, layers present; name resolution."""

from __future__ import annotations

import re

import pytest
import torch

from neurodec._torchvision import enable_torchvision
from neurodec.backbones import BackboneSpec, get_backbone_spec, list_backbones, load
from neurodec.backbones.loading import OUTPUT

SOURCES = {"timm", "open_clip", "torchvision", "transformers", "neurodec"}
ALL = list_backbones()


def _meta_layers(name: str) -> set[str]:
    return set(load(name, weights="random", device="meta").layer_names())


@pytest.mark.parametrize("name", ALL)
def test_every_entry_is_well_formed(name):
    spec = get_backbone_spec(name)
    assert isinstance(spec, BackboneSpec) and spec.name == name
    assert spec.source in SOURCES
    if spec.source != "neurodec":
        assert name.startswith(f"{spec.source}/")
    else:
        assert re.fullmatch(r"[\w.]+:\w+", spec.model_id), spec.model_id
    assert spec.layers and all(isinstance(layer, str) and layer for layer in spec.layers)
    assert len(spec.mean) == 3 and len(spec.std) == 3 and all(s > 0 for s in spec.std)
    assert 0 < spec.crop_pct <= 1 and spec.input_size > 0
    assert spec.interpolation in ("bicubic", "bilinear", "nearest")
    assert spec.resize_mode in ("shortest", "squash")
    assert spec.checkpoint_filter is None or re.fullmatch(r"[\w.]+:\w+", spec.checkpoint_filter)


def test_curated_timm_names_exist_with_their_config_and_stage_layers():
    enable_torchvision()
    import timm

    available = set(timm.list_models())
    for name in list_backbones("timm/*"):
        spec = get_backbone_spec(name)
        assert spec.model_id in available, name
        cfg = timm.models.get_pretrained_cfg(f"{spec.model_id}.{spec.pretrained}")
        assert (spec.input_size, spec.crop_pct, spec.interpolation) == (cfg.input_size[-1], cfg.crop_pct, cfg.interpolation)
        assert (spec.mean, spec.std) == (tuple(cfg.mean), tuple(cfg.std)), name
        with torch.device("meta"):
            model = timm.create_model(spec.model_id)
        assert spec.layers == tuple(dict.fromkeys(f["module"] for f in model.feature_info)), name


@pytest.mark.parametrize("pattern", ["torchvision/*", "open_clip/*", "transformers/*", "neurodec-own"])
def test_registered_layers_exist_in_the_models(pattern):
    names = [n for n in ALL if get_backbone_spec(n).source == "neurodec"] if pattern == "neurodec-own" else list_backbones(pattern)
    for name in names:
        layers = _meta_layers(name)
        missing = [layer for layer in get_backbone_spec(name).layers if layer not in layers]
        assert not missing, (name, missing)


def test_library_names_resolve_on_demand():
    spec = get_backbone_spec("timm/resnet18.tv_in1k")
    assert (spec.source, spec.model_id, spec.pretrained, spec.interpolation) == ("timm", "resnet18", "tv_in1k", "bilinear")
    spec = get_backbone_spec("open_clip/RN50:openai")
    assert (spec.model_id, spec.pretrained) == ("RN50", "openai")
    spec = get_backbone_spec("torchvision/vgg16")
    assert spec.pretrained == "IMAGENET1K_V1" and spec.input_size == 224
    assert get_backbone_spec("transformers/some-lab/some-model").model_id == "some-lab/some-model"
    assert "timm/resnet18.tv_in1k" not in list_backbones()


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("resnet50", "Close matches: .*timm/resnet50"),
        ("timm/convnxt_atto", "timm has no model 'convnxt_atto'. Close matches: convnext_atto"),
        ("timm/resnet50.nope", "no pretrained tag 'nope'.*tv_in1k"),
        ("open_clip/ViT-B-31", "Close matches: ViT-B-32"),
        ("open_clip/ViT-B-32:nope", "no pretrained tag 'nope'.*laion2b_s34b_b79k"),
        ("torchvision/alexnt", "Close matches: alexnet"),
    ],
)
def test_unknown_names_list_close_matches(name, match):
    with pytest.raises(ValueError, match=match):
        get_backbone_spec(name)




def test_meta_listing_includes_output_and_nested_modules():
    layers = _meta_layers("timm/convnext_atto")
    assert {"stages.0", "stages.0.blocks.0.conv_dw", OUTPUT} <= layers
