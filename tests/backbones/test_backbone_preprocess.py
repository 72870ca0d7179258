"""User-chosen preprocessing: load(preprocess=...), Preprocess, and its dict form (YAML configs)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from skimage.data import astronaut

from neurodec._torchvision import enable_torchvision
from neurodec.backbones import (
    ImagePreprocessor,
    Preprocess,
    extract_features,
    get_backbone_spec,
    load,
    preprocess_from_dict,
)
from neurodec.backbones.preprocessing import transform_from_spec

YAML_MAPPING = "{resize: 256, crop: 227, interpolation: bilinear, mean: null, std: null}"


def test_preprocess_override_matches_a_hand_built_torchvision_transform(atto):
    transforms = enable_torchvision().transforms
    image = astronaut()[:300, :400]  # a real photograph, not square
    bb = load("timm/convnext_atto", weights="random", device="cpu", preprocess=yaml.safe_load(YAML_MAPPING))
    expected = transforms.Compose([
        transforms.Resize(256, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(227),
        transforms.ToTensor(),
    ])(Image.fromarray(image))
    got = bb.preprocess(image)
    assert torch.equal(got, expected) and got.shape == (3, 227, 227) and 0 <= got.min() and got.max() <= 1
    default = atto.preprocess(image)  # the registry tag's: 224 crop, ImageNet-normalized
    assert default.shape == (3, 224, 224) and default.min() < 0

    normalized = Preprocess(resize=(120, 160), interpolation="bicubic", mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4))
    expected = transforms.Compose([
        transforms.Resize((120, 160), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize(mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4)),
    ])(Image.fromarray(image))
    bb = load("timm/convnext_atto", weights="random", device="cpu", preprocess=normalized)
    assert torch.equal(bb.preprocess(image), expected)
    assert bb.preprocess.description == repr(normalized)


def test_preprocess_changes_the_feature_cache_key(atto, stimuli, tmp_path):
    small = load("timm/convnext_atto", weights="random", device="cpu", preprocess={"resize": 32, "mean": None, "std": None})
    a = extract_features(atto, stimuli, layers="stages.0", cache=tmp_path, verbose=False)["stages.0"]
    b = extract_features(small, stimuli, layers="stages.0", cache=tmp_path, verbose=False)["stages.0"]
    assert a.meta["preprocessing"] != b.meta["preprocessing"] and not np.allclose(a.data, b.data)
    assert len(list(tmp_path.rglob("*.h5"))) == 2
    # Readable beside the hash, for a report's Methods.
    assert b.meta["preprocessing_description"] == small.preprocess.description
    assert "resize=32" in b.meta["preprocessing_description"]


def test_other_preprocess_forms(rng):
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    own = ImagePreprocessor(lambda pil: torch.zeros(3, 8, 8), description="zeros")
    assert load("timm/convnext_atto", weights="random", device="cpu", preprocess=own).preprocess is own
    plain = load("timm/convnext_atto", weights="random", device="cpu", preprocess=lambda pil: torch.ones(3, 4, 4))
    assert torch.equal(plain.preprocess(image), torch.ones(3, 4, 4))
    with pytest.raises(ValueError, match="The 'preprocess' parameter of load must be None.*Got int"):
        load("timm/convnext_atto", weights="random", device="cpu", preprocess=3)


def test_from_spec_is_the_registry_default_and_round_trips():
    spec = get_backbone_spec("hornet_tiny_7x7")
    preprocess = Preprocess.from_spec(spec)
    assert repr(preprocess.transform()) == repr(transform_from_spec(spec))
    assert (preprocess.crop, preprocess.resize) == (spec.input_size, int(spec.input_size / spec.crop_pct))
    assert preprocess_from_dict(preprocess.to_dict()) == preprocess
    squash = Preprocess.from_spec(dataclasses.replace(spec, resize_mode="squash"))
    assert (squash.resize, squash.crop) == ((spec.input_size, spec.input_size), None)


def test_dict_form_defaults_and_yaml_values():
    assert preprocess_from_dict(yaml.safe_load(YAML_MAPPING)) == Preprocess(256, 227, "bilinear", None, None)
    assert preprocess_from_dict({"resize": [224, 280]}) == Preprocess(resize=(224, 280))
    from_yaml = preprocess_from_dict(yaml.safe_load("{resize: 248, crop: 224, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}"))
    assert from_yaml.mean == (0.5, 0.5, 0.5) and from_yaml.interpolation == "bilinear"


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"resize": 256, "crop": "227px"}, "The 'crop' key of cfg must be a positive integer, a \\[height, width\\] "
                                           "pair of them, or None. Got '227px' \\(str\\)"),
        ({"resize": 256, "mena": [0.5] * 3}, "Unknown key 'mena' in cfg; expected keys: resize, crop, interpolation, "
                                             "mean, std. Did you mean 'mean'\\?"),
        ({"crop": 224}, "cfg needs the key 'resize'"),
        ({"resize": 0}, "The 'resize' key of cfg must be a positive integer.*Got 0 \\(int\\)"),
        ({"resize": True}, "The 'resize' key of cfg .*Got True \\(bool\\)"),
        ({"resize": [1, 2, 3]}, "The 'resize' key of cfg .*Got \\[1, 2, 3\\]"),
        ({"resize": 256, "interpolation": "bilinera"}, "The 'interpolation' key of cfg must be one of .*Got "
                                                       "'bilinera'. Did you mean 'bilinear'\\?"),
        ({"resize": 256, "mean": None}, "The 'mean' and 'std' keys of cfg must both be given or both be None"),
        ({"resize": 256, "std": [0.2, 0, 0.2]}, "The 'std' key of cfg must be three positive numbers"),
        ({"resize": 256, "mean": "imagenet"}, "The 'mean' key of cfg must be three numbers"),
        ([256, 227], "cfg must be a mapping with keys resize, crop, interpolation, mean, std. Got \\[256, 227\\]"),
    ],
)
def test_dict_form_errors_name_the_key(mapping, message):
    with pytest.raises(ValueError, match=message):
        preprocess_from_dict(mapping, context="cfg")


def test_load_validates_a_dict_preprocess_before_building():
    with pytest.raises(ValueError, match="The 'crop' key of preprocess must be"):
        load("timm/convnext_atto", weights="random", preprocess={"resize": 256, "crop": -1})
    with pytest.raises(ValueError, match="The 'interpolation' parameter of Preprocess must be one of"):
        Preprocess(resize=256, interpolation="cubic")


def test_unequal_image_sizes_without_resize_say_how_to_fix(tmp_path):
    from neurodec.data import Stimuli

    paths = {}
    for i, shape in enumerate([(32, 32, 3), (40, 32, 3)]):
        paths[i] = tmp_path / f"{i}.png"
        Image.fromarray(np.zeros(shape, np.uint8)).save(paths[i])
    bb = load("timm/convnext_atto", weights="random", device="cpu", preprocess={"resize": None})
    with pytest.raises(ValueError, match="differ in shape.*preprocess=\\{'resize': 256, 'crop': 224\\}"):
        extract_features(bb, Stimuli.from_files(paths), verbose=False)
