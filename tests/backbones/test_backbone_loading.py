"""Loading every source randomly, local checkpoints (torch.save, safetensors, snapshots), bad inputs."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from neurodec._torchvision import enable_torchvision
from neurodec.backbones import BackboneSpec, load, register_backbone
from neurodec.backbones.registry import BACKBONES

TINY_CLIP = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=32, layers=2, width=32, head_width=16, patch_size=8),
    text_cfg=dict(context_length=12, vocab_size=49408, width=16, heads=2, layers=1),
)
TINY_DINO = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, image_size=32, patch_size=8)


def _forward(backbone, image):
    with torch.no_grad():
        return backbone.model(backbone.preprocess(image)[None])


def test_random_init_is_seeded_and_leaves_the_global_rng_alone(atto):
    state = torch.random.get_rng_state()
    again = load("timm/convnext_atto", weights="random", device="cpu")
    other = load("timm/convnext_atto", weights="random", device="cpu", random_state=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    params = [dict(m.model.named_parameters())["stem.0.weight"] for m in (atto, again, other)]
    assert torch.equal(params[0], params[1]) and not torch.equal(params[0], params[2])
    assert (atto.weights, other.weights) == ("random:seed=0", "random:seed=1")
    assert not atto.model.training and atto.layers == ("stages.0", "stages.1", "stages.2", "stages.3")


def test_torchvision_alexnet_random(rng):
    bb = load("torchvision/alexnet", weights="random", device="cpu")
    assert bb.layers[1] == "features.4" and "features.11" in bb.layer_names()
    x = bb.preprocess(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    assert x.shape == (3, 224, 224)
    assert "crop_size=[224]" in bb.preprocess.description and "BILINEAR" in bb.preprocess.description


def test_open_clip_tiny_image_and_text_towers(rng):
    bb = load("open_clip/ViT-S-32", weights="random", device="cpu", **TINY_CLIP)
    assert bb.layers == ("transformer.resblocks.0", "transformer.resblocks.1", "output")
    image = _forward(bb, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    text = bb.encode_text(["a photo of a face", "a house"])
    assert image.shape == (1, 16) and text.shape == (2, 16)
    assert bb.weights.startswith("random:seed=0;kwargs=")


def test_open_clip_pretrained_needs_a_tag():
    with pytest.raises(ValueError, match="names no pretrained tag; use 'open_clip/ViT-S-32:<tag>'"):
        load("open_clip/ViT-S-32", weights="pretrained")


def test_unregistered_transformers_model_needs_a_class_for_random_init():
    with pytest.raises(ValueError, match="names no transformers model class.*register a BackboneSpec with model_class"):
        load("transformers/some-lab/some-vit", weights="random")


def test_encode_text_needs_a_text_tower(atto):
    with pytest.raises(ValueError, match="has no text tower"):
        atto.encode_text(["a cat"])


def test_transformers_dinov2_and_git_tower_from_tiny_configs(rng):
    dino = load("transformers/facebook/dinov2-small", weights="random", device="cpu", **TINY_DINO)
    assert dino.layers == ("encoder.layer.0", "encoder.layer.1")
    assert type(dino.model).__name__ == "Dinov2Model"
    git = load(
        "transformers/microsoft/git-base", weights="random", device="cpu", vocab_size=64, hidden_size=16,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, bos_token_id=1, eos_token_id=2,
        vision_config=dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                           image_size=32, patch_size=8),
    )
    assert type(git.model).__name__ == "GitVisionModel" and type(git.root).__name__ == "GitForCausalLM"
    assert git.layers == ("vision_model.encoder.layers.0", "vision_model.encoder.layers.1")
    out = _forward(git, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    assert out.last_hidden_state.shape[-1] == 16


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_checkpoint_round_trip(tmp_path, rng, suffix):
    source = load("timm/convnext_atto", weights="random", device="cpu", random_state=3)
    state = source.model.state_dict()
    path = tmp_path / f"ckpt{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:  # a training script's wrapper: {"state_dict": DDP-prefixed keys}
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    with pytest.warns(UserWarning, match="without preprocessing metadata"):
        loaded = load("timm/convnext_atto", weights=path, device="cpu")
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert torch.equal(_forward(loaded, image), _forward(source, image))
    assert loaded.weights.startswith("file:") and len(loaded.weights) == 5 + 64


def test_wrong_checkpoint_lists_missing_unexpected_and_mismatched_keys(tmp_path):
    state = load("timm/convnext_atto", weights="random", device="cpu").model.state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["head.fc.bias"]
    state["stem.0.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"1 missing key\(s\): head.fc.bias; 1 unexpected key\(s\): extra.weight; "
                                         r"1 shape mismatch\(es\): stem.0.weight: checkpoint \(3, 3\) vs model"):
        load("timm/convnext_atto", weights=tmp_path / "bad.pt", device="cpu")


def test_transformers_snapshot_folder_uses_its_image_processor(tmp_path, rng):
    enable_torchvision()  # transformers' vision models import torchvision
    import transformers

    config = transformers.Dinov2Config(**TINY_DINO)
    torch.manual_seed(0)
    transformers.Dinov2Model(config).save_pretrained(tmp_path)
    processor = transformers.BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                                               image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor.save_pretrained(tmp_path)
    bb = load("transformers/facebook/dinov2-small", weights=tmp_path, device="cpu")
    image = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    expected = processor(images=image, return_tensors="pt")["pixel_values"][0]
    assert torch.equal(bb.preprocess(image), expected) and expected.shape == (3, 32, 32)
    assert bb.weights.startswith("snapshot:")
    processor.save_pretrained(tmp_path / "elsewhere")
    (tmp_path / "preprocessor_config.json").write_text((tmp_path / "elsewhere" / "preprocessor_config.json").read_text())
    assert load("transformers/facebook/dinov2-small", weights=tmp_path, device="cpu").weights == bb.weights
    transformers.Dinov2Model(config).save_pretrained(tmp_path)  # new random weights: a new identity
    assert load("transformers/facebook/dinov2-small", weights=tmp_path, device="cpu").weights != bb.weights


def test_neurodec_source_builder_checkpoint_filter(tmp_path, monkeypatch, rng):
    (tmp_path / "tiny_arch.py").write_text(textwrap.dedent("""
        import torch

        def build(width=4):
            return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.ReLU(), torch.nn.Conv2d(width, 2, 1))

        def rename(state, model):
            if not any(k.startswith("conv_a.") for k in state):
                raise ValueError("not a release checkpoint")
            return {k.replace("conv_a", "0").replace("conv_b", "2"): v for k, v in state.items()}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = BackboneSpec(name="tiny_arch_test", source="neurodec", model_id="tiny_arch:build", input_size=16,
                        crop_pct=1.0, layers=("0", "2"), checkpoint_filter="tiny_arch:rename")
    register_backbone(spec)
    try:
        source = load("tiny_arch_test", weights="random", device="cpu", random_state=5)
        released = {k.replace("0.", "conv_a.").replace("2.", "conv_b."): v for k, v in source.model.state_dict().items()}
        torch.save({"model": released}, tmp_path / "released.pth")
        with pytest.warns(UserWarning, match="without preprocessing metadata"):
            loaded = load("tiny_arch_test", weights=tmp_path / "released.pth", device="cpu")
        image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
        assert torch.equal(_forward(loaded, image), _forward(source, image))
        # A state dict already in the model's own names (here as .npz arrays) skips the release filter.
        np.savez(tmp_path / "own.npz", **{k: v.numpy() for k, v in source.model.state_dict().items()})
        with pytest.warns(UserWarning, match="without preprocessing metadata"):
            own = load("tiny_arch_test", weights=tmp_path / "own.npz", device="cpu")
        assert torch.equal(_forward(own, image), _forward(source, image))
        assert load("tiny_arch_test", weights="random", width=8).model[0].out_channels == 8
    finally:
        BACKBONES._entries.pop("tiny_arch_test")


def test_bad_weights_and_layers(atto, tmp_path):
    with pytest.raises(FileNotFoundError, match="'weights' parameter must be"):
        load("timm/convnext_atto", weights=tmp_path / "missing.pth")
    (tmp_path / "w.npy").write_bytes(b"0")
    with pytest.raises(ValueError, match="must end with one of"):
        load("timm/convnext_atto", weights=tmp_path / "w.npy")
    with pytest.raises(ValueError, match="only transformers backbones load snapshot folders"):
        load("timm/convnext_atto", weights=tmp_path)
    with pytest.raises(ValueError, match="has no layer 'stages.9'. Close matches: stages.3"):
        atto.check_layers(["stages.9"])


def test_pretrained_without_network_says_how_to_proceed():
    with pytest.raises(RuntimeError, match="could not be loaded.*pass the local file"):
        load("torchvision/alexnet", weights="pretrained", device="cpu")
