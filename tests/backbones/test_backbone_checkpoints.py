"""Checkpoint files saved inside a larger model (keys under 'features.', as resmem's ResNet-152), and their preprocessing."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from PIL import Image
from skimage.data import astronaut

from neurodec._torchvision import enable_torchvision
from neurodec.backbones import load

# resmem's convention: [0, 1] input (no normalization); smaller sizes keep the test fast.
RAW = {"resize": 64, "crop": 57, "interpolation": "bilinear", "mean": None, "std": None}


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory):
    """A random torchvision ResNet-18 saved as the ``features`` submodule of a model with a head."""
    torch.manual_seed(0)
    bare = enable_torchvision().models.resnet18().eval()
    state = {f"features.{k}": v for k, v in bare.state_dict().items()}
    state |= {"fc6.weight": torch.zeros(4, 1000), "fc6.bias": torch.zeros(4)}
    path = tmp_path_factory.mktemp("ckpt") / "whole_model.pth"
    torch.save(state, path)
    return bare, path


def test_key_mismatch_suggests_the_shared_prefix(prefixed):
    _, path = prefixed
    with pytest.raises(ValueError) as info:
        load("torchvision/resnet18", weights=path, device="cpu", preprocess=RAW)
    message = str(info.value)
    assert "122 missing key(s): conv1.weight" in message and "124 unexpected key(s): features.conv1.weight" in message
    assert message.endswith(
        "122 of 124 checkpoint keys start with 'features.'; without it 122 of 122 model keys match. "
        "Load the keys under it with load(..., strip_prefix='features.') (the 2 other key(s) are ignored)."
    )


def test_strip_prefix_loads_strictly_and_matches_a_bare_torchvision_forward(prefixed, caplog):
    bare, path = prefixed
    with caplog.at_level(logging.INFO, logger="neurodec"):
        bb = load("torchvision/resnet18", weights=path, device="cpu", preprocess=RAW, strip_prefix="features.")
    assert "strip_prefix='features.': loading the 122 key(s) under it" in caplog.text
    assert "ignoring 2 other key(s): fc6.weight, fc6.bias" in caplog.text
    assert bb.weights.endswith(";strip=features.")
    transforms = enable_torchvision().transforms
    by_hand = transforms.Compose([transforms.Resize(64), transforms.CenterCrop(57), transforms.ToTensor()])
    image = astronaut()
    x = by_hand(Image.fromarray(image))[None]
    with torch.no_grad():
        expected = bare(x)
        got = bb.model(bb.preprocess(image)[None])
    assert torch.equal(got, expected)


def test_strip_prefix_errors(prefixed):
    _, path = prefixed
    with pytest.raises(ValueError, match="strip_prefix='backbone.' matches no key of .*whole_model.pth; its keys "
                                         "start with fc6., features."):
        load("torchvision/resnet18", weights=path, device="cpu", preprocess=RAW, strip_prefix="backbone.")
    with pytest.raises(ValueError, match="strip_prefix='features.' applies to checkpoint files only; "
                                         "weights='random' is not one"):
        load("torchvision/resnet18", weights="random", strip_prefix="features.")


def test_a_checkpoint_without_preprocess_warns_with_the_argument_to_pass(prefixed):
    _, path = prefixed
    with pytest.warns(UserWarning) as record:
        load("torchvision/resnet18", weights=path, device="cpu", strip_prefix="features.")
    (message,) = [str(w.message) for w in record]
    assert message.startswith(
        f"weights='{path}' is a local checkpoint without preprocessing metadata: images are preprocessed with the "
        "registry default of 'torchvision/resnet18', preprocess={'resize': 256, 'crop': 224, 'interpolation': "
        "'bilinear', 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}."
    )
    assert "load(..., preprocess={'resize': 256, 'crop': 227, 'interpolation': 'bilinear', 'mean': None, 'std': None})" in message
    assert "Passing preprocess= silences this warning." in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load("torchvision/resnet18", weights=path, device="cpu", strip_prefix="features.", preprocess=RAW)
