"""BrainEncoder: equals extract_features + EncodingModel.predict, gradients reach pixels, clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from encoder_fixtures import (
    N_UNITS, as_tensor, clip, dino, features_of, fit_model, resnet, tiny_stimuli,
)
from float32_tolerance import float32_rtol
from neurodec.discovery import BrainEncoder, roi_mean
from neurodec.discovery._pixels import PixelPreprocess, pixel_steps


@pytest.fixture(scope="module")
def stimuli():
    return tiny_stimuli()


@pytest.fixture(scope="module")
def rn():
    return resnet()


def _bound(model, features, raw, units) -> np.ndarray:
    """float32 error bound of the prediction, array of shape (n_stimuli, n_units).

    Both paths sum the same products in another order: the reducer's (n_in terms
    of magnitude |x| |P| + |mean| |P|, from the unreduced features ``raw``), then
    the ridge head's (n_features terms); a float32 sum of n terms errs by at most
    n * eps32 times the sum of the terms' magnitudes, propagated through the head.
    """
    coef = np.abs(model.coef_[:, units]).astype(np.float64)
    magnitude, n_in = [], 0
    for space, unreduced, cols in zip(features, raw, model.feature_slices_):
        x = np.abs(np.asarray(unreduced.data, dtype=np.float64))
        reducer = space.meta.get("reducer")
        if reducer is not None:
            P = reducer.components_
            P = np.abs(P.toarray() if hasattr(P, "toarray") else P)
            mean = np.abs(getattr(reducer, "mean_", np.zeros(P.shape[1])))
            x = (x + mean) @ P.T
            n_in = max(n_in, P.shape[1])
        magnitude.append((x + np.abs(model.feature_mean_[cols])) / model.feature_scale_[cols])
    terms = np.hstack(magnitude) @ coef
    return float32_rtol(n_in + coef.shape[0] + 1) * (terms + np.abs(model.intercept_[units]))


CASES = {
    "cnn avg + grid, two spaces": (resnet, [("layer2", "avg"), ("layer4", "grid")], {}),
    "cnn pca": (resnet, [("layer3", "avg")], {"reduction": "pca", "n_components": 12}),
    "cnn srp + avg": (resnet, [("layer4", "grid"), ("layer1", "avg")], {"reduction": "srp", "n_components": 20}),
    "vit tokens, cls": (dino, [("encoder.layer.1", "cls")], {}),
    "open_clip tower: tokens + embedding": (clip, [("transformer.resblocks.0", "avg"), ("output", "avg")], {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_encoder_equals_extraction_then_predict(case, stimuli, rn):
    make, layer_pooling, reduce = CASES[case]
    backbone = rn if make is resnet else make()
    if reduce:
        reduce = {**reduce, "fit_ids": list(stimuli.ids)[:40]}
    features = features_of(backbone, stimuli, layer_pooling, **reduce)
    raw = features_of(backbone, stimuli, layer_pooling) if reduce else features
    model, responses = fit_model(features, stimuli)
    encoder = BrainEncoder.from_fitted(backbone, model, features)
    with torch.no_grad():
        got = encoder(as_tensor(stimuli)).numpy()
    expected = model.predict(features)
    units = np.arange(N_UNITS)
    assert got.shape == expected.shape == (len(stimuli), N_UNITS)
    assert np.all(np.abs(got - expected) <= _bound(model, features, raw, units))
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training
    assert not backbone.model._forward_hooks  # hooks live only during a forward pass


def test_units_roi_and_indices_select_columns(stimuli, rn):
    features = features_of(rn, stimuli, [("layer2", "avg")])
    model, responses = fit_model(features, stimuli)
    full = BrainEncoder.from_fitted(rn, model, features)
    x = as_tensor(stimuli)[:5]
    with torch.no_grad():
        all_units = full(x)
        roi = BrainEncoder.from_fitted(rn, model, features, units={"roi:toy": "B"}, responses=responses)
        picked = BrainEncoder.from_fitted(rn, model, features, units=np.array([4, 0]))
        np.testing.assert_array_equal(roi.units_, [3, 4, 5])
        assert list(roi.unit_info_["roi:toy"]) == ["B"] * 3
        # A matrix product over other columns may round differently: n_features-term sums of float32.
        bound = float32_rtol(full.coef.shape[0] + 1) * (full.features(x).abs() @ full.coef.abs() + full.intercept.abs())
        assert torch.all((roi(x) - all_units[:, 3:]).abs() <= bound[:, 3:])
        assert torch.all((picked(x) - all_units[:, [4, 0]]).abs() <= bound[:, [4, 0]])


def test_gradients_match_finite_differences_and_ascent_raises_objective(stimuli):
    backbone = resnet()
    features = features_of(backbone, stimuli, [("layer2", "avg"), ("layer3", "grid")])
    model, _ = fit_model(features, stimuli)
    encoder = BrainEncoder.from_fitted(backbone, model, features).double()
    objective = roi_mean([0, 1, 2])
    x = as_tensor(stimuli)[:2].double().requires_grad_(True)
    score = objective(encoder(x)).sum()
    (grad,) = torch.autograd.grad(score, x)
    rng = np.random.default_rng(0)
    # A tiny step along a unit direction: the ReLU/max-pool net is piecewise smooth, and a step this
    # short crosses no kink, so central differences are exact up to float64 rounding (~eps64 * |f| / h).
    h = 1e-6
    with torch.no_grad():
        for _ in range(3):
            v = torch.as_tensor(rng.normal(size=x.shape))
            v /= v.norm()
            numeric = (objective(encoder(x + h * v)).sum() - objective(encoder(x - h * v)).sum()) / (2 * h)
            assert float((grad * v).sum()) == pytest.approx(float(numeric), rel=1e-6, abs=1e-8)
        before = objective(encoder(x))
        after = objective(encoder(x + 1e-3 * grad / grad.abs().max()))
    assert torch.all(after > before)


def test_pixel_steps_read_library_transforms(rn):
    from neurodec.backbones import load

    timm_default = load("timm/resnet18", weights="random", device="cpu")
    steps = pixel_steps(timm_default.preprocess.transform)
    assert [s[0] for s in steps] == ["resize", "crop", "normalize"]
    assert steps[0][1:3] == ([235], "bicubic") and steps[1][1] == [224, 224]
    np.testing.assert_allclose(steps[2][1], [0.485, 0.456, 0.406], rtol=1e-6)
    # At the input size the tensor path is exact: crop and resize are no-ops, normalization is (x - mean) / std.
    x = torch.rand(2, 3, 32, 32)
    expected = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(PixelPreprocess(pixel_steps(rn.preprocess.transform))(x), expected)
    # A larger image is resized (antialiased torch interpolation) and cropped to the model's size.
    assert PixelPreprocess(steps)(torch.rand(1, 3, 300, 260)).shape == (1, 3, 224, 224)


def test_unsupported_preprocessing_is_named():
    with pytest.raises(ValueError, match="cannot replay.*supports a torchvision Compose"):
        pixel_steps(lambda image: image, name="mine")
    from neurodec.backbones import Preprocess

    with pytest.raises(ValueError, match="'lanczos' exists for PIL images only"):
        pixel_steps(Preprocess(resize=32, interpolation="lanczos").transform())


def test_bad_models_features_and_units(stimuli, rn):
    from neurodec.encoding import EncodingModel

    features = features_of(rn, stimuli, [("layer2", "avg")])
    with pytest.warns(UserWarning, match="excludes 1"):
        model, responses = fit_model(features, stimuli, constant_unit=2)
    with pytest.raises(ValueError, match="not fitted"):
        BrainEncoder.from_fitted(rn, EncodingModel(), features)
    with pytest.raises(ValueError, match=r"fit on feature spaces .*'timm/resnet18/layer2', 128"):
        BrainEncoder.from_fitted(rn, model, features_of(rn, stimuli, [("layer1", "avg")]))
    other = resnet(random_state=1)
    with pytest.raises(ValueError, match="'weights' differs: features 'random:seed=0', backbone 'random:seed=1'"):
        BrainEncoder.from_fitted(other, model, features)
    renamed = [dataclasses.replace(features[0], meta={k: v for k, v in features[0].meta.items() if k != "layer"})]
    with pytest.raises(ValueError, match=r"lack the provenance \['layer'\]"):
        BrainEncoder.from_fitted(rn, model, renamed)
    with pytest.raises(ValueError, match=r"1 of the 5 selected units have no fitted weights .*units \[2\]"):
        BrainEncoder.from_fitted(rn, model, features, units=np.array([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match=r"units \[2\]"):
        BrainEncoder.from_fitted(rn, model, features, units={"toy": "A"}, responses=responses)
    with pytest.raises(ValueError, match=r"Unknown label\(s\) \['C'\] in ROI atlas 'toy'. Labels present: \['A', 'B'\]"):
        BrainEncoder.from_fitted(rn, model, features, units={"toy": "C"}, responses=responses)
    with pytest.raises(ValueError, match="need responses="):
        BrainEncoder.from_fitted(rn, model, features, units={"toy": "B"})
    with pytest.raises(ValueError, match=r"indices must be in \[0, 6\)"):
        BrainEncoder.from_fitted(rn, model, features, units=[0, 9])
    encoder = BrainEncoder.from_fitted(rn, model, features)  # units=None: the 5 fitted units
    np.testing.assert_array_equal(encoder.units_, [0, 1, 3, 4, 5])
    assert "n_outputs=5" in repr(encoder)
    with pytest.raises(ValueError, match=r"shape \(n_images, 3, height, width\)"):
        encoder(torch.zeros(2, 32, 32))


@pytest.mark.gpu
def test_encoder_on_cuda_matches_cpu(stimuli):
    backbone = resnet()
    features = features_of(backbone, stimuli, [("layer2", "avg"), ("layer4", "grid")])
    model, _ = fit_model(features, stimuli)
    encoder = BrainEncoder.from_fitted(backbone, model, features)
    x = as_tensor(stimuli)[:8]
    with torch.no_grad():
        cpu = encoder(x)
        encoder.to("cuda")
        assert backbone.device.type == "cuda"
        cuda = encoder(x).cpu()  # inputs move to the encoder's device
    # cuDNN and CPU kernels sum in other orders (and may use TF32): the test's float32 bound, loosened to
    # TF32's 10-bit mantissa.
    bound = 2.0**-10 * (encoder.features(x.cuda()).abs() @ encoder.coef.abs() + encoder.intercept.abs()).cpu()
    assert torch.all((cuda - cpu).abs() <= bound)
