"""Reconstruction plumbing on a tiny random Stable unCLIP pipeline: shapes, seeds, conditioning, img2img, errors."""

from __future__ import annotations

import numpy as np
import pytest

from neurodec.decoding import (
    Reconstructions,
    decode_latents_to_images,
    encode_images_to_latents,
    pipeline_embedding_dim,
    reconstruct_images,
)
from neurodec.discovery.small_models import make_small_diffusion_pipeline, make_small_unclip_pipeline

DIM, SIZE, STEPS = 24, 32, 4


@pytest.fixture(scope="module")
def pipe():
    return make_small_unclip_pipeline(embedding_dim=DIM, image_size=SIZE, scheduler="ddim", random_state=0)


@pytest.fixture(scope="module")
def embeds():
    return np.random.default_rng(0).standard_normal((3, DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def plain(pipe, embeds) -> Reconstructions:
    return reconstruct_images(pipe, embeds, num_inference_steps=STEPS, random_state=5, batch_size=2, verbose=False)


def _differ(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_shapes_and_range(pipe, plain):
    assert pipeline_embedding_dim(pipe) == DIM
    assert plain.images.shape == (3, SIZE, SIZE, 3) and plain.images.dtype == np.float32
    assert plain.images.min() >= 0 and plain.images.max() <= 1
    assert plain.init_images is None and plain.prompts is None


def test_seeded_and_batch_independent(pipe, embeds, plain):
    # Image i is seeded random_state + i: the same whatever the batching; float32 conv reductions may reorder.
    again = reconstruct_images(pipe, embeds, num_inference_steps=STEPS, random_state=5, batch_size=3, verbose=False)
    np.testing.assert_allclose(again.images, plain.images, atol=1e-4)
    other = reconstruct_images(pipe, embeds, num_inference_steps=STEPS, random_state=6, batch_size=2, verbose=False)
    assert _differ(other.images, plain.images) > 1e-3


def test_embedding_conditions_the_image(pipe, embeds, plain):
    flipped = reconstruct_images(pipe, -embeds, num_inference_steps=STEPS, random_state=5, verbose=False)
    assert _differ(flipped.images, plain.images) > 1e-3


def test_prompts_condition_the_image(pipe, embeds, plain):
    captions = ["a red bus", "two cats on a sofa", "a plate of food"]
    prompted = reconstruct_images(pipe, embeds, prompts=captions, num_inference_steps=STEPS, random_state=5, verbose=False)
    assert prompted.prompts == tuple(captions)
    assert _differ(prompted.images, plain.images) > 1e-3


def test_vae_roundtrip_shapes(pipe, rng):
    images = rng.random((2, SIZE, SIZE, 3)).astype(np.float32)
    latents = encode_images_to_latents(pipe, images)
    assert latents.shape == (2, 4, SIZE // 2, SIZE // 2)
    decoded = decode_latents_to_images(pipe, latents)
    assert decoded.shape == images.shape and decoded.min() >= 0 and decoded.max() <= 1


def test_low_level_init_steers_the_image(pipe, embeds, plain, rng):
    latents = rng.standard_normal((3, 4, SIZE // 2, SIZE // 2)).astype(np.float32)
    half = reconstruct_images(
        pipe, embeds, init_latents=latents, strength=0.5, num_inference_steps=STEPS, random_state=5, verbose=False
    )
    assert half.init_images.shape == plain.images.shape
    np.testing.assert_allclose(half.init_images, decode_latents_to_images(pipe, latents), atol=1e-5)
    assert _differ(half.images, plain.images) > 1e-3
    # One DDIM step from t=1 (strength 1/10): the init is barely noised, so the result is the decoded init
    # up to the random UNet's noise prediction times sqrt(1 - abar_1) ~ 0.03, far closer than a full run.
    light = reconstruct_images(
        pipe, embeds, init_latents=latents, strength=0.1, num_inference_steps=10, random_state=5, verbose=False
    )
    assert _differ(light.images, light.init_images) < 0.2 * _differ(plain.images, light.init_images)


def test_init_images_go_through_the_vae(pipe, embeds, rng):
    images = rng.random((3, SIZE, SIZE, 3)).astype(np.float32)
    from_images = reconstruct_images(pipe, embeds, init_images=images, num_inference_steps=STEPS, verbose=False)
    from_latents = reconstruct_images(
        pipe, embeds, init_latents=encode_images_to_latents(pipe, images), num_inference_steps=STEPS, verbose=False
    )
    np.testing.assert_allclose(from_images.images, from_latents.images, atol=1e-4)


def test_wrong_embedding_dimension_names_both(pipe):
    with pytest.raises(ValueError, match=rf"have {DIM + 1} dimensions.*conditioned on {DIM}-dimensional"):
        reconstruct_images(pipe, np.zeros((2, DIM + 1), np.float32), num_inference_steps=1, verbose=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strength": 0.0}, "'strength'"),
        ({"prompts": ["only one"]}, "'prompts'"),
        ({"init_latents": np.zeros((1, 4, 16, 16), np.float32)}, "low-level init has 1"),
        ({"init_latents": np.zeros((2, 4, 16, 16)), "init_images": np.zeros((2, 32, 32, 3))}, "at most one"),
    ],
)
def test_bad_input(pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        reconstruct_images(pipe, np.zeros((2, DIM), np.float32), num_inference_steps=1, verbose=False, **kwargs)


def test_text_only_pipeline_is_refused():
    with pytest.raises(TypeError, match="StableUnCLIPImg2ImgPipeline.*StableDiffusionPipeline"):
        pipeline_embedding_dim(make_small_diffusion_pipeline(image_size=16))


def test_saved_pipeline_loads_back(pipe, embeds, plain, tmp_path):
    from neurodec.decoding import load_reconstruction_pipeline

    pipe.save_pretrained(tmp_path / "unclip")
    loaded = load_reconstruction_pipeline(tmp_path / "unclip", scheduler="ddim", device="cpu")
    again = reconstruct_images(loaded, embeds, num_inference_steps=STEPS, random_state=5, verbose=False)
    np.testing.assert_allclose(again.images, plain.images, atol=1e-4)
    with pytest.raises(OSError, match="Could not load"):
        load_reconstruction_pipeline(tmp_path / "missing", device="cpu")


@pytest.mark.gpu
def test_cuda_agrees_with_cpu_and_half_precision_runs(embeds, plain):
    import torch

    gpu = make_small_unclip_pipeline(embedding_dim=DIM, image_size=SIZE, scheduler="ddim", random_state=0).to("cuda")
    on_gpu = reconstruct_images(gpu, embeds, num_inference_steps=STEPS, random_state=5, verbose=False)
    again = reconstruct_images(gpu, embeds, num_inference_steps=STEPS, random_state=5, verbose=False)
    np.testing.assert_array_equal(on_gpu.images, again.images)
    # Same weights and CPU-seeded noise: the device's float32 rounding must stay far below what another seed changes.
    other_seed = reconstruct_images(gpu, embeds, num_inference_steps=STEPS, random_state=6, verbose=False)
    assert _differ(on_gpu.images, plain.images) < 0.1 * _differ(other_seed.images, on_gpu.images)
    latents = np.random.default_rng(1).standard_normal((3, 4, SIZE // 2, SIZE // 2)).astype(np.float32)
    half = reconstruct_images(gpu.to(torch_dtype=torch.float16), embeds, init_latents=latents, strength=0.5,
                              num_inference_steps=STEPS, random_state=5, verbose=False)
    assert half.images.shape == plain.images.shape and np.isfinite(half.images).all()
