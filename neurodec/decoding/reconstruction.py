"""Reconstruct seen images from decoded embeddings with an image-embedding-conditioned diffusion pipeline.

The high-level path (MindEye2, Stable unCLIP): a CLIP image embedding decoded
from the brain conditions diffusers' ``StableUnCLIPImg2ImgPipeline`` through
its ``image_embeds=`` argument (the pipeline's own CLIP image encoder is not
run). Two optional paths add what Brain-Diffuser and MindEye1 add:

- a low-level init (img2img): a decoded VAE latent (or any decoded blurry
  image, encoded by the pipeline's VAE) is noised to ``strength`` of the
  schedule and denoised from there, so layout and colour come from the brain;
- a text prompt: a caption decoded from the brain (see brain captioning).

Real weights: ``"stabilityai/stable-diffusion-2-1-unclip"`` (OpenCLIP ViT-H/14
image embeddings, 1024 dimensions) or ``"stabilityai/stable-diffusion-2-1-unclip-small"``
(OpenAI CLIP ViT-L/14, 768), hub ids or local folders, loaded with
:func:`load_reconstruction_pipeline`. ``StableDiffusionImageVariationPipeline``
(``"lambdalabs/sd-image-variations-diffusers"``) and Versatile Diffusion take
images, not embeddings, in diffusers 0.42 and are therefore not supported.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._docs import fill_doc
from .._logging import get_logger

__all__ = [
    "Reconstructions",
    "decode_latents_to_images",
    "encode_images_to_latents",
    "load_reconstruction_pipeline",
    "pipeline_embedding_dim",
    "reconstruct_images",
]

logger = get_logger(__name__)


@dataclass(frozen=True)
class Reconstructions:
    """Images generated from decoded embeddings.

    Attributes
    ----------
    images : array of shape (n_images, height, width, 3)
        The reconstructions, float32 RGB in [0, 1].
    init_images : array of shape (n_images, height, width, 3) or None
        The low-level images the img2img path started from (decoded VAE
        latents or the given init images), None without that path.
    prompts : tuple of str or None
        The text prompt of each image (decoded captions), None without prompts.
    """

    images: np.ndarray
    init_images: np.ndarray | None
    prompts: tuple[str, ...] | None


def load_reconstruction_pipeline(
    model: str | os.PathLike,
    *,
    scheduler: str = "dpm",
    torch_dtype: Any = None,
    device: Any = "auto",
    attention_slicing: bool = False,
    vae_slicing: bool = False,
    cpu_offload: bool = False,
) -> Any:
    """Load a Stable unCLIP pipeline for reconstruction from a hub id or a local folder.

    Parameters
    ----------
    model : str or path-like
        ``"stabilityai/stable-diffusion-2-1-unclip"`` (1024-d ViT-H/14 image
        embeddings), ``"stabilityai/stable-diffusion-2-1-unclip-small"``
        (768-d ViT-L/14) or a folder written by ``save_pretrained``.
    scheduler : {"dpm", "ddim", "unipc"}
        Sampler built from the pipeline's scheduler config.
    torch_dtype : torch.dtype or {"float16", "bfloat16", "float32"}, optional
        Weight precision. For GPUs of <= 24 GB use ``"float16"`` with
        ``attention_slicing=True`` (and ``cpu_offload=True`` below ~10 GB).
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        Where the pipeline runs.
    attention_slicing, vae_slicing, cpu_offload : bool
        diffusers' memory-saving options (see
        :func:`neurodec.discovery.configure_memory`).

    Returns
    -------
    diffusers.StableUnCLIPImg2ImgPipeline
        Progress bar off, on ``device`` (or offloaded).
    """
    from ..discovery.diffusion import load_diffusion_pipeline

    return load_diffusion_pipeline(
        model, scheduler=scheduler, torch_dtype=torch_dtype, device=device, attention_slicing=attention_slicing,
        vae_slicing=vae_slicing, cpu_offload=cpu_offload, pipeline_class="StableUnCLIPImg2ImgPipeline",
    )


def pipeline_embedding_dim(pipe: Any) -> int:
    """The image-embedding dimension an unCLIP pipeline is conditioned on.

    Parameters
    ----------
    pipe : diffusers.StableUnCLIPImg2ImgPipeline
        The reconstruction pipeline.

    Returns
    -------
    int
        Its image normalizer's ``embedding_dim`` (1024 for Stable unCLIP 2.1).

    Raises
    ------
    TypeError
        If ``pipe`` is not conditioned on image embeddings.
    """
    normalizer = getattr(pipe, "image_normalizer", None)
    if normalizer is None or not hasattr(normalizer, "config"):
        raise TypeError(
            "Reconstruction needs an image-embedding-conditioned pipeline (diffusers.StableUnCLIPImg2ImgPipeline, "
            f"e.g. 'stabilityai/stable-diffusion-2-1-unclip'). Got {type(pipe).__name__} instead."
        )
    return int(normalizer.config.embedding_dim)


def _as_float_array(values: Any, name: str, ndim: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != ndim or array.shape[0] == 0 or not np.all(np.isfinite(array)):
        raise ValueError(f"The '{name}' parameter must be a finite {what}. Got an array of shape {array.shape} instead.")
    return array


def _batches(n: int, batch_size: int, verbose: Any, desc: str) -> Any:
    from tqdm.auto import tqdm

    if int(batch_size) < 1:
        raise ValueError(f"The 'batch_size' parameter must be a positive integer. Got {batch_size!r} instead.")
    starts = range(0, n, int(batch_size))
    return tqdm(starts, desc=desc, disable=not verbose or len(starts) < 2)


@fill_doc
def encode_images_to_latents(pipe: Any, images: Any, *, batch_size: int = 8, verbose: Any = False) -> np.ndarray:
    """Encode images with the pipeline's VAE: the low-level targets a decoder learns.

    Parameters
    ----------
    pipe : diffusers pipeline with a ``vae``
        The reconstruction pipeline (its VAE defines the latent space).
    images : array of shape (n_images, height, width, 3)
        RGB in [0, 1]; height and width multiples of the VAE's downsampling factor.
    batch_size : int
        Images per VAE call.
    %(verbose)s

    Returns
    -------
    array of shape (n_images, latent_channels, height / f, width / f)
        The posterior means, scaled by the VAE's ``scaling_factor`` (the
        space the UNet denoises in), float32.
    """
    import torch

    images = _as_float_array(images, "images", 4, "array of shape (n_images, height, width, 3)")
    factor = int(pipe.vae_scale_factor)
    if images.shape[-1] != 3 or images.shape[1] % factor or images.shape[2] % factor:
        raise ValueError(
            f"The 'images' parameter must have shape (n_images, height, width, 3) with height and width multiples "
            f"of {factor}. Got shape {images.shape} instead."
        )
    vae, out = pipe.vae, []
    with torch.no_grad():
        for start in _batches(len(images), batch_size, verbose, "VAE encode"):
            batch = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2) * 2 - 1
            batch = batch.to(device=vae.device, dtype=vae.dtype)
            latents = vae.encode(batch).latent_dist.mean * vae.config.scaling_factor
            out.append(latents.float().cpu().numpy())
    return np.concatenate(out)


@fill_doc
def decode_latents_to_images(pipe: Any, latents: Any, *, batch_size: int = 8, verbose: Any = False) -> np.ndarray:
    """Decode (brain-decoded) VAE latents to images with the pipeline's VAE.

    Parameters
    ----------
    pipe : diffusers pipeline with a ``vae``
        The reconstruction pipeline.
    latents : array of shape (n_images, latent_channels, h, w)
        Latents in the scaled space of :func:`encode_images_to_latents`.
    batch_size : int
        Latents per VAE call.
    %(verbose)s

    Returns
    -------
    array of shape (n_images, h * f, w * f, 3)
        RGB in [0, 1], float32.
    """
    import torch

    latents = _as_float_array(latents, "latents", 4, "array of shape (n_images, latent_channels, h, w)")
    vae = pipe.vae
    channels = int(vae.config.latent_channels)
    if latents.shape[1] != channels:
        raise ValueError(
            f"The 'latents' parameter has {latents.shape[1]} channels but the pipeline's VAE takes {channels}."
        )
    out = []
    with torch.no_grad():
        for start in _batches(len(latents), batch_size, verbose, "VAE decode"):
            batch = torch.from_numpy(latents[start:start + batch_size]).to(device=vae.device, dtype=vae.dtype)
            images = vae.decode(batch / vae.config.scaling_factor).sample
            out.append(((images.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


def _truncated_scheduler(scheduler: Any, strength: float) -> Any:
    """A copy of ``scheduler`` whose schedule starts ``strength`` of the way from its end (img2img).

    StableUnCLIPImg2ImgPipeline always denoises from pure noise. Cutting the
    first steps off the schedule inside ``set_timesteps`` (the timesteps and,
    for sigma-based samplers, the matching sigmas, so the sampler's step
    index and its lower-order final step stay consistent) lets the pipeline's
    own loop (guidance, embedding noise, decoding) run unchanged from noised
    init latents. The kept steps are those diffusers' img2img pipelines keep.
    """
    truncated = copy.deepcopy(scheduler)
    full_set_timesteps = truncated.set_timesteps

    def set_timesteps(num_inference_steps: int, *args: Any, **kwargs: Any) -> None:
        full_set_timesteps(num_inference_steps, *args, **kwargs)
        n_full = len(truncated.timesteps)
        t_start = max(num_inference_steps - min(int(num_inference_steps * strength), num_inference_steps), 0)
        begin = min(t_start * int(getattr(truncated, "order", 1)), n_full - 1)
        truncated.timesteps = truncated.timesteps[begin:]
        sigmas = getattr(truncated, "sigmas", None)
        if sigmas is not None and len(sigmas) == n_full + 1:
            truncated.sigmas = sigmas[begin:]

    truncated.set_timesteps = set_timesteps
    return truncated


def _check_inputs(
    pipe: Any, embeds: np.ndarray, init_latents: Any, init_images: Any, prompts: Any, strength: float
) -> tuple[np.ndarray | None, tuple[str, ...] | None]:
    expected = pipeline_embedding_dim(pipe)
    if embeds.shape[1] != expected:
        raise ValueError(
            f"The decoded image embeddings ('image_embeds') have {embeds.shape[1]} dimensions but the pipeline "
            f"{type(pipe).__name__} is conditioned on {expected}-dimensional image embeddings: decode the embeddings "
            "of the CLIP model the pipeline was trained with."
        )
    if init_latents is not None and init_images is not None:
        raise ValueError("Give at most one of 'init_latents' and 'init_images'.")
    if not 0.0 < float(strength) <= 1.0:
        raise ValueError(f"The 'strength' parameter must be in (0, 1]. Got {strength!r} instead.")
    init = None
    if init_latents is not None:
        init = _as_float_array(init_latents, "init_latents", 4, "array of shape (n_images, latent_channels, h, w)")
    elif init_images is not None:
        init = encode_images_to_latents(pipe, init_images)
    if init is not None and len(init) != len(embeds):
        raise ValueError(f"The low-level init has {len(init)} images but 'image_embeds' has {len(embeds)} rows.")
    if prompts is None:
        return init, None
    if isinstance(prompts, str) or len(prompts) != len(embeds) or not all(isinstance(p, str) for p in prompts):
        raise ValueError(
            f"The 'prompts' parameter must be a list of {len(embeds)} strings, one per image embedding. Got {prompts!r:.80} instead."
        )
    return init, tuple(prompts)


@fill_doc
def reconstruct_images(
    pipe: Any,
    image_embeds: Any,
    *,
    init_latents: Any = None,
    init_images: Any = None,
    strength: float = 0.75,
    prompts: Any = None,
    num_inference_steps: int = 20,
    guidance_scale: float = 7.5,
    noise_level: int = 0,
    random_state: int = 0,
    batch_size: int = 4,
    verbose: Any = True,
) -> Reconstructions:
    """Generate images from decoded CLIP image embeddings (and optionally a low-level init and captions).

    Parameters
    ----------
    pipe : diffusers.StableUnCLIPImg2ImgPipeline
        From :func:`load_reconstruction_pipeline` or
        :func:`neurodec.discovery.make_small_unclip_pipeline`.
    image_embeds : array of shape (n_images, embedding_dim)
        Decoded image embeddings, in the scale of the CLIP model the pipeline
        was trained with (a decoder's re-standardized predictions).
    init_latents : array of shape (n_images, latent_channels, h, w), optional
        Decoded VAE latents (scaled as :func:`encode_images_to_latents`
        gives them): the img2img start.
    init_images : array of shape (n_images, height, width, 3), optional
        Decoded low-level images in [0, 1], encoded by the pipeline's VAE
        instead; at most one of ``init_latents`` and ``init_images``.
    strength : float in (0, 1]
        How much of the schedule the init is noised to (1: all of it, the
        init keeps only what survives full noise); used with an init only.
    prompts : list of str, optional
        One text prompt per image (decoded captions); empty prompts otherwise.
    num_inference_steps : int
        Sampler steps over the full schedule.
    guidance_scale : float
        Classifier-free guidance over (image embedding, prompt); 1 turns it off.
    noise_level : int
        Noise augmentation of the image embeddings (0-1000; Stable unCLIP's
        ``noise_level``): higher gives more varied images.
    random_state : int
        Seed: image ``i`` uses the generator seeded ``random_state + i``, so
        each image is the same whatever the batching.
    batch_size : int
        Images per pipeline call.
    %(verbose)s

    Returns
    -------
    Reconstructions
        The images and, with an init, the low-level init images.

    Raises
    ------
    ValueError
        If the embedding dimension does not match the pipeline (both are
        named), or an init or the prompts do not match the embeddings.
    TypeError
        If ``pipe`` is not conditioned on image embeddings.
    """
    import torch

    embeds = _as_float_array(image_embeds, "image_embeds", 2, "array of shape (n_images, embedding_dim)")
    init, prompts = _check_inputs(pipe, embeds, init_latents, init_images, prompts, strength)
    device = pipe._execution_device
    dtype = pipe.unet.dtype
    scheduler = pipe.scheduler
    init_images_out = decode_latents_to_images(pipe, init, batch_size=batch_size) if init is not None else None
    images = []
    try:
        if init is not None:
            pipe.scheduler = _truncated_scheduler(scheduler, float(strength))
        for start in _batches(len(embeds), batch_size, verbose, "Reconstruct"):
            stop = min(start + int(batch_size), len(embeds))
            generators = [torch.Generator(device="cpu").manual_seed(int(random_state) + i) for i in range(start, stop)]
            kwargs: dict[str, Any] = {}
            if init is not None:
                x0 = torch.from_numpy(init[start:stop])
                pipe.scheduler.set_timesteps(int(num_inference_steps), device=device)
                noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in generators])
                first = pipe.scheduler.timesteps[:1].repeat(len(x0)).cpu()
                latents = pipe.scheduler.add_noise(x0, noise, first)
                kwargs.update(latents=latents.to(device=device, dtype=dtype),
                              height=x0.shape[2] * pipe.vae_scale_factor, width=x0.shape[3] * pipe.vae_scale_factor)
            out = pipe(
                image_embeds=torch.from_numpy(embeds[start:stop]).to(device=device, dtype=dtype),
                prompt=list(prompts[start:stop]) if prompts is not None else [""] * (stop - start),
                num_inference_steps=int(num_inference_steps), guidance_scale=float(guidance_scale),
                noise_level=int(noise_level), generator=generators, output_type="np", **kwargs,
            )
            images.append(np.asarray(out.images, dtype=np.float32))
    finally:
        pipe.scheduler = scheduler
    return Reconstructions(images=np.concatenate(images), init_images=init_images_out, prompts=prompts)
