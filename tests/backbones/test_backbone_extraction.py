"""Layer-wise extraction: hooks, pooling shapes, image modes, reduction fitted on train ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurodec.backbones import extract_features, load
from neurodec.backbones.pooling import pool_output
from neurodec.data import Stimuli

TINY_DINO = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, image_size=32, patch_size=8)


def test_features_match_a_manual_forward(atto, stimuli):
    feats = extract_features(atto, stimuli, layers=["stages.1", "stages.3"], batch_size=4, verbose=False)
    x = atto.preprocess.batch([stimuli.get_image(i) for i in stimuli.ids])
    with torch.no_grad():
        maps = atto.model.forward_intermediates(x, indices=[1, 3], intermediates_only=True)
    for layer, fmap in zip(["stages.1", "stages.3"], maps):
        np.testing.assert_allclose(feats[layer].data, fmap.mean(dim=(2, 3)).numpy(), rtol=1e-4, atol=1e-5)
        assert list(feats[layer].stimulus_ids) == stimuli.ids
        assert feats[layer].name == f"timm/convnext_atto/{layer}"
    assert not atto.model._forward_hooks and not atto.model.stages[1]._forward_hooks


def test_forward_stops_after_the_last_requested_layer(atto, stimuli):
    calls = []
    handle = atto.model.stages[3].register_forward_hook(lambda module, inputs, output: calls.append(len(output)))
    try:
        early = extract_features(atto, stimuli, layers=["stages.1", "stages.0"], batch_size=4, verbose=False)
    finally:
        handle.remove()
    assert calls == [4]  # only the first batch, which learns where to stop, runs the last stage
    full = extract_features(atto, stimuli, layers=["stages.0", "stages.1", "output"], batch_size=4, verbose=False)
    for layer in ("stages.0", "stages.1"):
        assert np.array_equal(early[layer].data, full[layer].data)


@pytest.mark.parametrize(("pooling", "dim"), [("avg", 160), ("max", 160), ("grid", 160 * 4), ("flatten", 160 * 14 * 14)])
def test_map_pooling_shapes(atto, stimuli, pooling, dim):
    feats = extract_features(atto, stimuli.subset(stimuli.ids[:3]), layers="stages.2", pooling=pooling, verbose=False)
    assert feats["stages.2"].data.shape == (3, dim)


def test_token_pooling_shapes_and_cls(stimuli):
    dino = load("transformers/facebook/dinov2-small", weights="random", device="cpu", **TINY_DINO)
    sub = stimuli.subset(stimuli.ids[:3])
    shapes = {p: extract_features(dino, sub, layers="encoder.layer.1", pooling=p, verbose=False)["encoder.layer.1"].data.shape
              for p in ("avg", "cls", "grid", "flatten")}
    assert shapes == {"avg": (3, 16), "cls": (3, 16), "grid": (3, 64), "flatten": (3, 17 * 16)}
    out = extract_features(dino, sub, layers=["encoder.layer.1", "output"], pooling="cls", verbose=False)
    with torch.no_grad():
        ref = dino.model(dino.preprocess.batch([sub.get_image(i) for i in sub.ids]))
    np.testing.assert_allclose(out["output"].data, ref.last_hidden_state[:, 0].numpy(), rtol=1e-5, atol=1e-6)


def test_pool_output_kinds():
    tokens = torch.zeros(2, 1 + 16, 3)
    tokens[:, 1:, 0] = torch.arange(16, dtype=torch.float32)  # patch index laid out row-major on a 4x4 grid
    tokens[:, 0] = 100.0  # the class token must not enter the grid
    grid = pool_output(tokens, "grid", grid=2).reshape(2, 3, 2, 2)[0, 0]
    assert torch.equal(grid, torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    nhwc = torch.randn(2, 5, 6, 7)
    assert torch.equal(pool_output(nhwc, "avg", channels=7), nhwc.mean(dim=(1, 2)))
    branches = [torch.randn(2, 4, 3), torch.randn(2, 5, 6)]
    assert pool_output(branches, "cls").shape == (2, 9)
    assert torch.equal(pool_output((tokens, "attn"), "cls"), tokens[:, 0])
    assert torch.equal(pool_output({"last_hidden_state": tokens, "pooler_output": tokens[:, 0]}, "cls"), tokens[:, 0])
    with pytest.raises(ValueError, match="pooling='cls' needs token outputs"):
        pool_output(nhwc, "cls")
    with pytest.raises(ValueError, match="pooling='grid' applies to maps"):
        pool_output(torch.randn(2, 8), "grid")


def test_grayscale_and_rgba_images_are_converted(atto, rng):
    rgb = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    gray = rgb[:, :, 0]
    rgba = np.concatenate([rgb, np.full((24, 20, 1), 7, np.uint8)], axis=2)
    assert torch.equal(atto.preprocess(rgba), atto.preprocess(rgb))
    assert torch.equal(atto.preprocess(gray), atto.preprocess(np.repeat(gray[:, :, None], 3, axis=2)))
    feats = extract_features(atto, np.stack([gray, gray]), layers="stages.0", verbose=False)
    assert feats["stages.0"].data.shape == (2, 40)
    with pytest.raises(ValueError, match="must be uint8 arrays.*float64"):
        atto.preprocess(rgb / 255.0)
    with pytest.raises(ValueError, match=r"Got an array of shape \(24, 20, 2\)"):
        atto.preprocess(rgb[:, :, :2])


def test_bad_arguments(atto, stimuli):
    with pytest.raises(ValueError, match="'pooling' parameter must be one of"):
        extract_features(atto, stimuli, pooling="mean", verbose=False)
    with pytest.raises(ValueError, match="needs fit_ids"):
        extract_features(atto, stimuli, reduction="pca", n_components=2, verbose=False)
    with pytest.raises(ValueError, match=r"fit_ids has 1 id\(s\) that are not among the stimuli, e.g. \['nope'\]"):
        extract_features(atto, stimuli, reduction="pca", n_components=2, fit_ids=["img00", "nope"], verbose=False)
    with pytest.raises(ValueError, match="has no layer 'stage.1'. Close matches: stages.1"):
        extract_features(atto, stimuli, layers=["stage.1"], verbose=False)
    with pytest.raises(ValueError, match="amp=True needs a CUDA device"):
        extract_features(atto, stimuli, amp=True, device="cpu", verbose=False)
    with pytest.raises(ValueError, match="n_components=20 for PCA must be between 1 and"):
        extract_features(atto, stimuli, layers="stages.0", reduction="pca", n_components=20, fit_ids=stimuli.ids[:5], verbose=False)


def test_reduction_is_fitted_on_training_stimuli_only(atto, rng):
    # Planted: test images are saturated colour fields, far from the noise
    # training images, so a projection fitted on all stimuli differs from
    # one fitted on the training rows alone.
    train = rng.integers(100, 156, size=(8, 32, 32, 3), dtype=np.uint8)
    test = np.zeros((4, 32, 32, 3), np.uint8)
    test[:, :, :, 0] = 255
    stimuli = Stimuli.from_array(np.concatenate([train, test]), ids=list(range(12)))
    raw = extract_features(atto, stimuli, layers="stages.1", verbose=False)["stages.1"].data
    from sklearn.decomposition import PCA
    from sklearn.random_projection import SparseRandomProjection

    for kind, reference in (("pca", PCA(3, random_state=0)), ("srp", SparseRandomProjection(3, random_state=0))):
        feats = extract_features(atto, stimuli, layers="stages.1", reduction=kind, n_components=3,
                                 fit_ids=list(range(8)), verbose=False)["stages.1"]
        expected = reference.fit(raw[:8]).transform(raw)
        np.testing.assert_allclose(feats.data, expected, rtol=1e-4, atol=1e-4)
        assert feats.meta["reducer"].n_features_in_ == raw.shape[1] and feats.meta["reduction"].startswith(kind)
    everything = PCA(3, random_state=0).fit(raw).transform(raw)
    assert not np.allclose(np.abs(feats.data), np.abs(everything), atol=1e-2)
    assert feats.data.dtype == np.float32


@pytest.mark.gpu
def test_amp_on_cuda_matches_float32(atto, stimuli):
    cuda = load("timm/convnext_atto", weights="random", device="cuda")
    fp32 = extract_features(atto, stimuli, layers="stages.3", verbose=False)["stages.3"]
    mixed = extract_features(cuda, stimuli, layers="stages.3", amp="auto", verbose=False)["stages.3"]
    assert mixed.meta["precision"] in ("bfloat16", "float16")
    np.testing.assert_allclose(mixed.data, fp32.data, rtol=0.05, atol=0.05)


def _count_forwards(model):
    calls = []
    return calls, model.register_forward_pre_hook(lambda module, inputs: calls.append(len(inputs[0])))


def test_too_many_components_fail_after_at_most_one_forward(atto, stimuli, tmp_path):
    calls, handle = _count_forwards(atto.model)
    try:
        with pytest.raises(ValueError, match=(
            r"n_components=100 exceeds the number of features of 2 layer\(s\) of 'timm/convnext_atto' with "
            r"pooling='avg': 'stages.0' has 40, 'stages.1' has 80. Reduce to at most 40 components "
            r"\(n_components=...\), leave those layers out \(layers=...\), or pool to more features"
        )):
            extract_features(atto, stimuli, layers=["stages.0", "stages.1", "stages.2", "stages.3"], batch_size=2,
                             reduction="srp", n_components=100, fit_ids=stimuli.ids, cache=tmp_path, verbose=False)
        assert calls == []  # timm's stage channels are known without a forward pass
        # Other layers are measured on the first batch: one forward, not the whole extraction.
        with pytest.raises(ValueError, match=r"1 layer\(s\) of 'timm/convnext_atto' with pooling='grid', grid=2: "
                                             r"'stem' has 160. Reduce to at most 160"):
            extract_features(atto, stimuli, layers=["stem", "stages.1"], batch_size=2,
                             pooling="grid", reduction="srp", n_components=200, fit_ids=stimuli.ids,
                             cache=tmp_path, verbose=False)
        assert calls == [2]
        assert not list(tmp_path.rglob("*.h5"))  # nothing finished was written
        calls.clear()
        # PCA's bound from the number of fit stimuli needs no forward pass at all.
        calls.clear()
        with pytest.raises(ValueError, match=r"n_components=8 for PCA must be between 1 and min\(n_fit_stimuli, "
                                             r"n_features\); fit_ids holds 5 distinct stimuli"):
            extract_features(atto, stimuli, layers="stages.3", reduction="pca", n_components=8,
                             fit_ids=stimuli.ids[:5], verbose=False)
        # Raw features already cached: their sizes are known, again without a forward pass.
        extract_features(atto, stimuli, layers="stages.0", cache=tmp_path, verbose=False)
        calls.clear()
        with pytest.raises(ValueError, match="'stages.0' has 40"):
            extract_features(atto, stimuli, layers="stages.0", reduction="srp", n_components=64,
                             fit_ids=stimuli.ids, cache=tmp_path, verbose=False)
        assert calls == []
        with pytest.raises(ValueError, match="'n_components' parameter must be a positive integer. Got 2.5"):
            extract_features(atto, stimuli, reduction="srp", n_components=2.5, fit_ids=stimuli.ids, verbose=False)
    finally:
        handle.remove()


def _model_state(bb):
    return {
        "params": {k: v.clone() for k, v in bb.root.state_dict().items()},
        "training": [m.training for m in bb.root.modules()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in bb.root.modules()],
        "requires_grad": [p.requires_grad for p in bb.root.parameters()],
        "devices": {p.device for p in bb.root.parameters()},
        "device": bb.device,
        "layers": bb.layers,
    }


def test_extraction_leaves_the_model_as_it_was_given(stimuli):
    # A batch-norm model in training mode: a forward in train mode would update its running statistics.
    bb = load("torchvision/resnet18", weights="random", device="cpu", eval=False,
              preprocess={"resize": 32, "crop": 32})
    before = _model_state(bb)
    assert all(before["training"])
    feats = extract_features(bb, stimuli, layers=["layer1", "avgpool"], reduction="pca", n_components=4,
                             fit_ids=stimuli.ids, random_state=1, verbose=False)
    after = _model_state(bb)
    assert after.keys() == before.keys()
    for key in before:
        if key == "params":
            assert all(torch.equal(before[key][k], after[key][k]) for k in before[key])
        else:
            assert after[key] == before[key], key
    with pytest.raises(ValueError):  # a failed call restores it too
        extract_features(bb, stimuli, layers="layer1", reduction="srp", n_components=10**6, fit_ids=stimuli.ids,
                         verbose=False)
    assert [m.training for m in bb.root.modules()] == before["training"]
    # The features are the eval-mode ones.
    raw = extract_features(bb, stimuli, layers="avgpool", verbose=False)["avgpool"].data
    bb.root.eval()
    with torch.no_grad():
        expected = torch.flatten(torch.nn.Sequential(*list(bb.model.children())[:-1])(bb.preprocess.batch(
            [stimuli.get_image(i) for i in stimuli.ids])), 1)
    bb.root.train()
    np.testing.assert_allclose(raw, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert feats["avgpool"].meta["reduction"].startswith("pca:n=4;seed=1;")


@pytest.mark.gpu
def test_extraction_on_another_device_moves_the_model_back(atto, stimuli):
    cpu = extract_features(atto, stimuli, layers="stages.3", verbose=False)["stages.3"]
    on_gpu = extract_features(atto, stimuli, layers="stages.3", device="cuda", amp=False, verbose=False)["stages.3"]
    assert atto.device.type == "cpu" and {p.device.type for p in atto.model.parameters()} == {"cpu"}
    np.testing.assert_allclose(on_gpu.data, cpu.data, rtol=1e-3, atol=1e-4)
