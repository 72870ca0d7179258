"""Public BrainDiVE entry points: brain-guided synthesis from noise and guided variations of natural images.

The guided sampler itself lives in :mod:`neurodec.discovery.guidance`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .guidance import make_scorer, pipeline_device, sample_guided, validate_args
from .guided_images import GuidedImages

__all__ = ["brain_guided_images", "brain_guided_variations"]


_SHARED_DOC = """    encoder : callable, optional
        Torch module or function from images, tensor of shape (N, 3, H, W) in
        [0, 1], to predicted responses, tensor of shape (N, n_units). Moved to
        the pipeline's device when it is a ``torch.nn.Module``; put it in eval
        mode (batch statistics would mix the images of a batch).
    objective : callable, optional
        Responses (N, n_units) -> scores (N,) to maximize. Default: the mean
        over all units (an ROI's mean predicted activation).
    score_fn : callable, optional
        Images (N, 3, H, W) in [0, 1] -> scores (N,), instead of ``encoder``.
    seeds : sequence of int
        One image per seed; a seed fixes the start noise (drawn on the CPU, so
        the same on every device), so guided and unguided (``guidance_scale=0``)
        runs with the same seeds start from the same latents.
    guidance_scale : float
        Multiplies the objective's gradient (BrainDiVE uses about 100-150 with
        responses z-scored per voxel). 0 samples without guidance.
    num_inference_steps : int
        Sampler steps (BrainDiVE: 50 DPM-Solver++ steps).
    prompt : str, optional
        Text conditioning; None conditions on the empty prompt (the BrainDiVE
        setting).
    cfg_scale : float
        Classifier-free guidance of the prompt; 1 turns it off (one UNet pass per step).
    image_size : int or (int, int), optional
        Size the decoded images are resized to (bilinear, antialiased) before
        the encoder, e.g. 224 for a CLIP tower. None: no resizing.
    batch_size : int
        Images denoised together.
    grad_through_unet : bool
        Also backpropagate through the UNet's noise prediction (as CLIP-guided
        diffusion does). Default False: the gradient flows through the clean
        estimate, VAE decoder and encoder only, which halves the cost of a step.
    device : {"cpu", "cuda", "cuda:N"} or torch.device, optional
        Where to run; the pipeline (and encoder) are moved there. None: where
        the pipeline already runs (its execution device, which honours model
        CPU offload).
    verbose : bool or int
        Show a progress bar over sampler steps."""

_RAISES_DOC = """    Raises
    ------
    ValueError
        For a scheduler the guidance cannot wrap (the message lists the
        supported ones) and for bad arguments.
    FloatingPointError
        If the guided noise prediction or latents become NaN or inf; the message
        names the step and the guidance scale."""


def brain_guided_images(
    pipe: Any,
    encoder: Callable | None = None,
    *,
    objective: Callable | None = None,
    score_fn: Callable | None = None,
    seeds: Sequence[int] = (0,),
    guidance_scale: float = 130.0,
    num_inference_steps: int = 50,
    prompt: str | None = None,
    cfg_scale: float = 1.0,
    height: int | None = None,
    width: int | None = None,
    image_size: int | Sequence[int] | None = None,
    batch_size: int = 1,
    grad_through_unet: bool = False,
    device: Any = None,
    verbose: bool | int = True,
) -> GuidedImages:
    """Synthesize images that maximize a brain encoder's objective (BrainDiVE).

    Parameters
    ----------
    pipe : diffusers pipeline
        A Stable-Diffusion-like pipeline (``unet``, ``vae``, ``scheduler``,
        ``text_encoder``, ``tokenizer``), e.g. from
        :func:`neurodec.discovery.load_diffusion_pipeline`. Its scheduler must
        be one of ``SUPPORTED_SCHEDULERS`` (DDIM, DPM-Solver++ multistep, UniPC).
%s
    height, width : int, optional
        Output size in pixels, multiples of the VAE's downsampling factor.
        Default: the UNet's sample size times that factor.

    Returns
    -------
    GuidedImages
        Images of shape (n_seeds, height, width, 3) in [0, 1] with their
        predicted objective; ``.top(k)`` re-ranks them.

%s

    Examples
    --------
    >>> pipe = load_diffusion_pipeline("stabilityai/stable-diffusion-2-1-base")  # doctest: +SKIP
    >>> result = brain_guided_images(pipe, encoder, seeds=range(100), image_size=224)  # doctest: +SKIP
    >>> result.top(10).plot_grid()  # doctest: +SKIP
    """
    seeds = validate_args(pipe, seeds, guidance_scale, num_inference_steps, batch_size, cfg_scale)
    scorer = make_scorer(encoder, objective, score_fn, image_size)
    _move_encoder(encoder, pipe, device)
    images, scores, settings = sample_guided(
        pipe, scorer, seeds, init_latents=None, strength=1.0, steps=num_inference_steps,
        guidance_scale=guidance_scale, prompt=prompt, cfg_scale=cfg_scale, height=height, width=width,
        batch_size=batch_size, grad_through_unet=grad_through_unet, device=device, verbose=verbose,
    )
    return GuidedImages(images=images, scores=scores, seeds=seeds.copy(), sources=None, settings=settings)


def brain_guided_variations(
    pipe: Any,
    images: np.ndarray,
    encoder: Callable | None = None,
    *,
    strength: float = 0.6,
    objective: Callable | None = None,
    score_fn: Callable | None = None,
    seeds: Sequence[int] = (0,),
    guidance_scale: float = 130.0,
    num_inference_steps: int = 50,
    prompt: str | None = None,
    cfg_scale: float = 1.0,
    image_size: int | Sequence[int] | None = None,
    batch_size: int = 1,
    grad_through_unet: bool = False,
    device: Any = None,
    verbose: bool | int = True,
) -> GuidedImages:
    """Brain-guided variations of natural images (BrainACTIV-style image-to-image guidance).

    Every image is encoded by the VAE (the latent distribution's mean), noised
    to the timestep ``strength`` of the way into the schedule with the
    scheduler's ``add_noise``, then denoised with the same guidance as
    :func:`brain_guided_images`. Low ``strength`` keeps the output close to
    the image; 1 starts from pure noise.

    Parameters
    ----------
    pipe : diffusers pipeline
        As in :func:`brain_guided_images`.
    images : array of shape (n_images, height, width, 3)
        Natural images, float in [0, 1] or uint8; height and width multiples of
        the VAE's downsampling factor.
    strength : float
        Fraction of the schedule run, in (0, 1].
%s

    Returns
    -------
    GuidedImages
        ``n_images * len(seeds)`` variations, image-major; ``sources`` gives
        each one's input image.

%s
    """
    import torch

    seeds = validate_args(pipe, seeds, guidance_scale, num_inference_steps, batch_size, cfg_scale)
    if not 0 < strength <= 1:
        raise ValueError(f"The 'strength' parameter must be in (0, 1]. Got {strength!r}.")
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(f"The 'images' parameter must be an array of shape (n_images, height, width, 3). Got {images.shape}.")
    pixels = images.astype(np.float32) / 255 if images.dtype == np.uint8 else images.astype(np.float32)
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
        raise ValueError("The 'images' parameter must hold finite values in [0, 1] (or uint8).")
    scorer = make_scorer(encoder, objective, score_fn, image_size)
    _move_encoder(encoder, pipe, device)
    dev = pipeline_device(pipe, device)
    with torch.no_grad():
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(dev, pipe.vae.dtype) * 2 - 1
        latents = pipe.vae.encode(x).latent_dist.mean
        if getattr(pipe.vae.config, "shift_factor", None) is not None:
            latents = latents - pipe.vae.config.shift_factor
        latents = latents * pipe.vae.config.scaling_factor
    sources = np.repeat(np.arange(len(images)), len(seeds))
    all_seeds = np.tile(seeds, len(images))
    out, scores, settings = sample_guided(
        pipe, scorer, all_seeds, init_latents=latents[torch.from_numpy(sources).to(dev)], strength=strength,
        steps=num_inference_steps, guidance_scale=guidance_scale, prompt=prompt, cfg_scale=cfg_scale,
        height=images.shape[1], width=images.shape[2], batch_size=batch_size, grad_through_unet=grad_through_unet,
        device=None, verbose=verbose,
    )
    return GuidedImages(images=out, scores=scores, seeds=all_seeds, sources=sources, settings=settings)


def _move_encoder(encoder: Any, pipe: Any, device: Any) -> None:
    import torch

    from .._device import resolve_device

    if isinstance(encoder, torch.nn.Module):
        encoder.to(pipe._execution_device if device is None else resolve_device(device))


brain_guided_images.__doc__ = brain_guided_images.__doc__ % (_SHARED_DOC, _RAISES_DOC)
brain_guided_variations.__doc__ = brain_guided_variations.__doc__ % (_SHARED_DOC, _RAISES_DOC)
