"""BrainDiVE brain-guided diffusion on a tiny random Stable Diffusion pipeline with planted encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from float32_tolerance import float32_atol
from tiny_diffusion import ColourEncoder, tiny_pipeline

from neurodec.discovery import (
    GuidedImages,
    brain_guided_images,
    brain_guided_variations,
    clip_embedding_fns,
    compare_predicted_activation,
    configure_memory,
    load_diffusion_pipeline,
    zero_shot_category_shares,
)
from neurodec.discovery.guidance import clean_latent_estimate

STEPS = 10
SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    return {name: tiny_pipeline(folder, scheduler=name) for name in ("ddim", "dpm", "unipc")}


@pytest.fixture(scope="module")
def redness():
    # Two units that both prefer red over blue: the ROI mean is planted to rise with red minus blue.
    return ColourEncoder(torch.tensor([[1.0, 0.5], [0.0, 0.0], [-1.0, -0.5]]))


def _run(pipe, encoder, scale, **kwargs):
    kwargs = {"seeds": SEEDS, "num_inference_steps": STEPS, "batch_size": 4, "verbose": False, **kwargs}
    return brain_guided_images(pipe, encoder, guidance_scale=scale, **kwargs)


@pytest.mark.parametrize("scheduler", ["ddim", "dpm", "unipc"])
def test_guidance_raises_the_objective_for_every_seed(pipes, redness, scheduler):
    unguided = _run(pipes[scheduler], redness, 0.0)
    guided = _run(pipes[scheduler], redness, 300.0)
    assert guided.images.shape == (len(SEEDS), 16, 16, 3)
    assert 0 <= guided.images.min() and guided.images.max() <= 1
    np.testing.assert_array_equal(guided.seeds, SEEDS)
    # Same seeds, same start noise: guidance must raise the ROI mean of every image.
    assert (guided.scores > unguided.scores).all(), (guided.scores, unguided.scores)
    # The scores are the planted encoder's own readout of the returned images.
    expected = redness(torch.from_numpy(guided.images).permute(0, 3, 1, 2)).mean(1).numpy()
    np.testing.assert_allclose(guided.scores, expected, atol=float32_atol(16 * 16, scale=1.0))
    assert guided.settings["scheduler"] == type(pipes[scheduler].scheduler).__name__


@pytest.mark.parametrize("scheduler", ["ddim", "dpm", "unipc"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_unguided_sampling_reproduces_the_pipeline(tmp_path, redness, scheduler, prediction_type):
    # Reference: with guidance off, the loop must be the pipeline's own sampler from the same start noise.
    pipe = tiny_pipeline(tmp_path, scheduler=scheduler)
    pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type=prediction_type)
    ours = _run(pipe, redness, 0.0, seeds=(0, 1), batch_size=2)
    noise = torch.stack([torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)])
    reference = pipe("", latents=noise, num_inference_steps=STEPS, guidance_scale=1.0, output_type="np",
                     num_images_per_prompt=2, height=16, width=16).images
    # v-prediction is converted to epsilon and back: a few float32 roundings of unit-scale values per step.
    np.testing.assert_allclose(ours.images, reference, rtol=0, atol=float32_atol(4 * STEPS, scale=1.0))
    guided = _run(pipe, redness, 300.0, seeds=(0, 1), batch_size=2)
    assert (guided.scores > ours.scores).all()


def test_objective_direction_and_gradient_through_unet(pipes, redness):
    unguided = _run(pipes["ddim"], redness, 0.0)
    # Minimizing (the negated objective) lowers every image's score.
    lowered = _run(pipes["ddim"], redness, 300.0, objective=lambda r: -r.mean(1))
    # GuidedImages.scores hold the objective that guided the run (here the negated ROI mean).
    assert (-lowered.scores < unguided.scores).all()
    through = _run(pipes["ddim"], redness, 300.0, grad_through_unet=True)
    assert (through.scores > unguided.scores).all()


def test_score_fn_and_image_size(pipes):
    seen = []

    def score_fn(images):
        seen.append(tuple(images.shape[-2:]))
        return images[:, 1].mean(dim=(1, 2))  # green

    unguided = _run(pipes["dpm"], None, 0.0, score_fn=score_fn, image_size=24)
    guided = _run(pipes["dpm"], None, 300.0, score_fn=score_fn, image_size=24)
    assert set(seen) == {(24, 24)}
    assert (guided.scores > unguided.scores).all()


def test_clean_estimate_matches_ddim_pred_original_sample(pipes):
    pipe = pipes["ddim"]
    scheduler = pipe.scheduler
    scheduler.set_timesteps(STEPS)
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, 8, 8, generator=generator)
    cond, _ = pipe.encode_prompt("", "cpu", 2, False)
    for t in scheduler.timesteps[[0, STEPS // 2, -1]]:
        with torch.no_grad():
            eps = pipe.unet(latents, t, encoder_hidden_states=cond).sample
        reference = scheduler.step(eps, t, latents).pred_original_sample
        ours = clean_latent_estimate(latents, eps, scheduler.alphas_cumprod[int(t)])
        scale = float((latents.abs() + eps.abs()).max() / scheduler.alphas_cumprod[int(t)].sqrt())
        np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=0, atol=float32_atol(4, scale))


def test_prompt_with_classifier_free_guidance_changes_the_images(pipes, redness):
    plain = _run(pipes["ddim"], redness, 0.0, seeds=(0,))
    prompted = _run(pipes["ddim"], redness, 0.0, seeds=(0,), prompt="a red face", cfg_scale=5.0)
    assert np.abs(plain.images - prompted.images).max() > 1e-3
    assert prompted.settings["prompt"] == "a red face"


def test_variations_start_from_the_image_and_raise_the_objective(pipes, redness):
    pipe = pipes["ddim"]
    rng = np.random.default_rng(0)
    images = np.broadcast_to(rng.uniform(0.2, 0.8, size=(2, 1, 1, 3)), (2, 16, 16, 3)).astype(np.float32)
    kwargs = {"seeds": (0, 1), "num_inference_steps": STEPS, "batch_size": 2, "verbose": False}
    with torch.no_grad():  # the VAE round trip of each input: what a zero-noise variation returns
        x = torch.from_numpy(images).permute(0, 3, 1, 2) * 2 - 1
        recon = ((pipe.vae.decode(pipe.vae.encode(x).latent_dist.mean).sample + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    low = brain_guided_variations(pipe, images, redness, strength=0.2, guidance_scale=0.0, **kwargs)
    full = brain_guided_variations(pipe, images, redness, strength=1.0, guidance_scale=0.0, **kwargs)
    np.testing.assert_array_equal(low.sources, [0, 0, 1, 1])
    np.testing.assert_array_equal(low.seeds, [0, 1, 0, 1])
    dist_low = np.abs(low.images - recon[low.sources]).mean(axis=(1, 2, 3))
    dist_full = np.abs(full.images - recon[full.sources]).mean(axis=(1, 2, 3))
    assert (dist_low < dist_full).all(), (dist_low, dist_full)
    guided = brain_guided_variations(pipe, images, redness, strength=0.6, guidance_scale=300.0, **kwargs)
    unguided = brain_guided_variations(pipe, images, redness, strength=0.6, guidance_scale=0.0, **kwargs)
    assert (guided.scores > unguided.scores).all()
    assert guided.settings["strength"] == 0.6


def test_non_finite_guidance_names_step_and_scale(pipes, redness):
    with pytest.raises(FloatingPointError, match=r"at step \d+ \(timestep \d+\) with guidance_scale=1e\+38"):
        _run(pipes["dpm"], redness, 1e38, seeds=(0,))


def test_unsupported_scheduler_lists_the_supported_ones(tmp_path, redness):
    pipe = tiny_pipeline(tmp_path, scheduler="euler")
    with pytest.raises(ValueError, match="EulerDiscreteScheduler.*DDIMScheduler, DPMSolverMultistepScheduler"):
        _run(pipe, redness, 100.0)
    from neurodec.discovery.diffusion import import_diffusers

    pipe.scheduler = import_diffusers().DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True)
    with pytest.raises(ValueError, match="use_karras_sigmas"):
        _run(pipe, redness, 100.0)


def test_bad_arguments(pipes, redness):
    pipe = pipes["ddim"]
    with pytest.raises(ValueError, match="exactly one of 'encoder'"):
        _run(pipe, None, 1.0)
    with pytest.raises(ValueError, match="exactly one of 'encoder'"):
        brain_guided_images(pipe, redness, score_fn=lambda x: x.mean((1, 2, 3)))
    with pytest.raises(ValueError, match="one score per image"):
        _run(pipe, redness, 1.0, objective=lambda r: r)
    with pytest.raises(ValueError, match="'guidance_scale'"):
        _run(pipe, redness, -1.0)
    with pytest.raises(ValueError, match="'seeds'"):
        _run(pipe, redness, 1.0, seeds=())
    with pytest.raises(ValueError, match="'strength'"):
        brain_guided_variations(pipe, np.zeros((1, 16, 16, 3)), redness, strength=0.0)
    with pytest.raises(ValueError, match="'images'"):
        brain_guided_variations(pipe, np.full((1, 16, 16, 3), 2.0), redness)


def test_top_reranks_by_predicted_objective():
    images = np.arange(5, dtype=np.float32)[:, None, None, None] * np.ones((5, 2, 2, 3), np.float32) / 10
    result = GuidedImages(images, np.array([0.3, 0.9, -1.0, 0.9, 0.5]), np.array([10, 11, 12, 13, 14]), None, {})
    top = result.top(3)
    np.testing.assert_array_equal(top.seeds, [11, 13, 14])  # ties keep their order
    np.testing.assert_array_equal(top.scores, [0.9, 0.9, 0.5])
    np.testing.assert_array_equal(top.images[:, 0, 0, 0], np.float32([0.1, 0.3, 0.4]))
    np.testing.assert_array_equal(result.top().seeds, [11, 13, 14, 10, 12])
    with pytest.raises(ValueError, match="'k'"):
        result.top(6)
    figure = result.plot_grid(3, ncols=2)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["seed 11: 0.9", "seed 13: 0.9", "seed 14: 0.5"]


def _solid(colours):
    return np.asarray(colours, np.float32)[:, None, None, :] * np.ones((1, 4, 4, 1), np.float32)


def test_predicted_activation_against_top_natural_images(redness):
    natural = _solid([[0.1, 0, 0.9], [0.9, 0, 0.1], [0.5, 0, 0.5], [0.7, 0, 0.3]])  # red-blue: -.8, .8, 0, .4
    synthesized = _solid([[1.0, 0, 0.0], [0.5, 0, 0.4]])  # 1.0, 0.1
    result = compare_predicted_activation(synthesized, natural, redness, top_k=2, device="cpu")
    np.testing.assert_array_equal(result.natural_indices, [1, 3])
    atol = float32_atol(16, scale=1.0)
    np.testing.assert_allclose(result.natural, [0.6, 0.3], atol=atol)  # ROI mean of weights 1 and 0.5
    np.testing.assert_allclose(result.synthesized, [0.75, 0.075], atol=atol)
    assert result.summary["auc"] == 0.5  # 1.0 beats both, 0.1 beats neither
    with pytest.raises(ValueError, match="'top_k'"):
        compare_predicted_activation(synthesized, natural, redness, top_k=5)


def test_zero_shot_category_shares_on_planted_embeddings():
    labels = ("faces", "places", "food")
    prompts = [f"a photo of {label}" for label in labels]

    def text_embed(texts):
        assert texts == prompts
        return torch.eye(3)[[0, 1, 2]] + 0.1  # each prompt along its own axis

    def image_embed(images):
        return images.mean(dim=(2, 3))  # red -> faces, green -> places, blue -> food

    red, green, blue = [0.9, 0.1, 0.1], [0.1, 0.9, 0.2], [0.2, 0.1, 0.9]
    sets = {"synthesized": _solid([red, red, red, green]), "natural": _solid([blue, green, blue, green])}
    result = zero_shot_category_shares(sets, image_embed_fn=image_embed, text_embed_fn=text_embed, labels=labels, device="cpu")
    np.testing.assert_allclose(result.shares.loc["synthesized"].to_numpy(), [0.75, 0.25, 0.0])
    np.testing.assert_allclose(result.shares.loc["natural"].to_numpy(), [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(result.assignments["natural"], [2, 1, 2, 1])
    with pytest.raises(ValueError, match="dimension 3"):
        zero_shot_category_shares(sets, image_embed_fn=lambda x: x.mean((2, 3))[:, :2], text_embed_fn=text_embed, labels=labels)


def test_load_diffusion_pipeline_from_a_folder_and_offline_error(tmp_path, pipes):
    pipes["ddim"].save_pretrained(tmp_path / "sd")
    pipe = load_diffusion_pipeline(tmp_path / "sd", scheduler="dpm", device="cpu", attention_slicing=True, vae_slicing=True)
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    for ours, saved in zip(pipe.unet.parameters(), pipes["ddim"].unet.parameters()):
        torch.testing.assert_close(ours, saved, rtol=0, atol=0)
    with pytest.raises(OSError, match="no-such-user/no-such-model.*HF_HUB_OFFLINE"):
        load_diffusion_pipeline("no-such-user/no-such-model", device="cpu")
    with pytest.raises(ValueError, match="'scheduler'"):
        load_diffusion_pipeline(tmp_path / "sd", scheduler="euler")


def test_memory_options_keep_the_results_and_offload_needs_cuda(tmp_path, redness):
    pipe = tiny_pipeline(tmp_path)
    plain = _run(pipe, redness, 300.0, seeds=(0, 1), batch_size=2)
    configure_memory(pipe, attention_slicing=True, vae_slicing=True)
    lean = _run(pipe, redness, 300.0, seeds=(0, 1), batch_size=2)
    # Slicing changes only how attention and decoding are batched: the images may differ by float32
    # rounding of sums of unit-scale terms, accumulated over the steps.
    np.testing.assert_allclose(lean.images, plain.images, rtol=0, atol=float32_atol(4 * STEPS * 16, scale=1.0))
    with pytest.raises(ValueError, match="'cpu_offload'.*CUDA"):
        configure_memory(pipe, cpu_offload=True, device="cpu")


def test_zero_shot_shares_with_a_clip_backbone(rng):
    from neurodec.backbones import load

    tiny_clip = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
                 "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    bb = load("open_clip/ViT-S-32", weights="random", device="cpu", **tiny_clip)
    images = rng.integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    image_fn, text_fn = clip_embedding_fns(bb)
    result = zero_shot_category_shares({"synthesized": images}, image_embed_fn=image_fn, text_embed_fn=text_fn, device="cpu")
    # Reference: the backbone's own preprocessing and towers, cosine similarity, argmax.
    with torch.no_grad():
        img = bb.model(torch.stack([bb.preprocess(image) for image in images])).numpy()
    txt = bb.encode_text([f"a photo of {label}" for label in result.labels]).numpy()
    cosine = (img / np.linalg.norm(img, axis=1, keepdims=True)) @ (txt / np.linalg.norm(txt, axis=1, keepdims=True)).T
    np.testing.assert_array_equal(result.assignments["synthesized"], cosine.argmax(1))
    np.testing.assert_allclose(result.shares.to_numpy().sum(), 1.0)
