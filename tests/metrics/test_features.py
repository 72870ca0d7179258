"""Feature-based reconstruction metrics on randomly initialized networks: mechanics, not published values."""

import numpy as np
import pytest

from neurodec.metrics import FEATURE_METRICS, feature_metric, metric_features

torch = pytest.importorskip("torch")
backbones = pytest.importorskip("neurodec.backbones")


def _images(rng, n=4, size=64):
    base = rng.random((n, size // 8, size // 8, 3))
    return np.kron(base, np.ones((1, 8, 8, 1))).astype(np.float32)


@pytest.mark.parametrize("name", sorted(FEATURE_METRICS))
def test_every_metric_names_a_registered_backbone_and_layer(name):
    spec = FEATURE_METRICS[name]
    # The meta device builds the architecture without memory or weights.
    bb = backbones.load(spec.backbone, weights="random", device="meta")
    assert bb.check_layers([spec.layer]) == [spec.layer]
    assert spec.score in ("two_way", "distance")


@pytest.fixture(scope="module")
def alexnet():
    return backbones.load("torchvision/alexnet", weights="random", device="cpu")


def test_alexnet_layers_shapes_and_identity(rng, alexnet):
    images = _images(rng)
    feats2 = metric_features(images, "alexnet2", backbone=alexnet)
    feats5 = metric_features(images, "alexnet5", backbone=alexnet, batch_size=3)
    # 256 px input: conv2's ReLU is 192 x 31 x 31, conv5's 256 x 15 x 15, flattened.
    assert feats2.shape == (4, 192 * 31 * 31) and feats5.shape == (4, 256 * 15 * 15)
    assert feature_metric(images, images, "alexnet2", backbone=alexnet).mean == 1.0


def test_alexnet_two_way_drops_when_predictions_are_shuffled(rng, alexnet):
    true = _images(rng, n=8)
    pred = np.clip(true + 0.05 * rng.standard_normal(true.shape), 0, 1).astype(np.float32)
    matched = feature_metric(pred, true, "alexnet5", backbone=alexnet)
    shuffled = feature_metric(pred[[1, 2, 3, 4, 5, 6, 7, 0]], true, "alexnet5", backbone=alexnet)
    assert matched.mean > 0.9 and shuffled.mean < matched.mean
    assert matched.per_image.shape == (8,)


def test_efficientnet_distance_zero_for_identical_images(rng):
    images = _images(rng, n=3)
    res = feature_metric(images, images, "efficientnet", weights="random", device="cpu")
    np.testing.assert_allclose(res.per_image, 0.0, atol=1e-6)  # float32 features, correlation of 1280 values


@pytest.mark.slow
def test_swav_loads_the_authors_checkpoint_layout(tmp_path, rng):
    # The released file holds "module."-prefixed trunk weights plus the SwAV heads (no fc).
    model = backbones.load("swav_resnet50", weights="random", device="cpu", random_state=1).root
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state["module.projection_head.0.weight"] = torch.zeros(2048, 2048)
    state["module.prototypes.weight"] = torch.zeros(3000, 128)
    path = tmp_path / "swav_800ep_pretrain.pth"
    torch.save(state, path)
    bb = backbones.load("swav_resnet50", weights=path, device="cpu", preprocess={"resize": 256, "crop": 224})
    for key, value in bb.root.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    images = _images(rng, n=3)
    assert metric_features(images, "swav", backbone=bb).shape == (3, 2048)
    assert feature_metric(images, images, "swav", backbone=bb).mean == pytest.approx(0.0, abs=1e-6)


def test_bad_input(rng, alexnet):
    images = _images(rng, n=3)
    with pytest.raises(ValueError, match="'metric' parameter must be one of"):
        feature_metric(images, images, "alexnet3", backbone=alexnet)
    with pytest.raises(ValueError, match=r"pred_images of shape \(2, 3, 64, 64\) and true_images of shape \(3, 3, 64, 64\)"):
        feature_metric(images[:2], images, "alexnet2", backbone=alexnet)
    with pytest.warns(UserWarning, match="defined on 'torchvision/inception_v3'.*not the protocol's"):
        metric_features(images, "inception", backbone=alexnet)
