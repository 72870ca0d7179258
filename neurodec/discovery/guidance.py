"""Brain-guided image synthesis (BrainDiVE, Luo et al. 2023) inside a diffusers latent-diffusion pipeline.

At every sampler step the noise prediction ``e`` gives the clean-latent
estimate ``x0 = (z - sqrt(1 - abar) e) / sqrt(abar)``; ``x0`` is decoded by
the VAE, clamped to [0, 1], resized to the encoder's input size and scored by
an encoder + objective (e.g. the mean predicted response of an ROI). The
gradient ``g`` of the score with respect to the latent ``z`` steers the noise
prediction, ``e <- e - sqrt(1 - abar) * scale * g``, before the pipeline's own
scheduler takes its step. The sampler is diffusers' (DDIM, DPM-Solver++,
UniPC); nothing of it is reimplemented here.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._logging import progress
from .diffusion import SUPPORTED_SCHEDULERS, import_diffusers

if TYPE_CHECKING:
    import torch

__all__ = ["check_scheduler", "clean_latent_estimate", "decode_latents", "make_scorer", "pipeline_device", "sample_guided", "validate_args"]

_PREDICTION_TYPES = ("epsilon", "v_prediction")
# Scheduler options that replace the integer timesteps by a sigma schedule, so
# that abar would no longer be alphas_cumprod[t].
_SIGMA_OPTIONS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas")


def check_scheduler(scheduler: Any) -> None:
    """Raise a ValueError unless the guidance can wrap ``scheduler`` (naming the supported ones)."""
    diffusers = import_diffusers()
    supported = tuple(getattr(diffusers, name) for name in SUPPORTED_SCHEDULERS)
    listing = ", ".join(SUPPORTED_SCHEDULERS)
    if not isinstance(scheduler, supported):
        raise ValueError(
            f"Brain guidance cannot wrap the scheduler {type(scheduler).__name__}: it needs the noise prediction at "
            f"integer timesteps of alphas_cumprod. Supported schedulers: {listing} (e.g. "
            f"pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))."
        )
    prediction = scheduler.config.get("prediction_type", None)
    if prediction not in _PREDICTION_TYPES:
        raise ValueError(
            f"Brain guidance supports prediction_type {_PREDICTION_TYPES}; the scheduler has {prediction!r}."
        )
    sigma_options = [name for name in _SIGMA_OPTIONS if scheduler.config.get(name, False)]
    if sigma_options:
        raise ValueError(
            f"Brain guidance needs abar = alphas_cumprod[t] at every step; scheduler option(s) {sigma_options} "
            f"change the noise schedule. Supported schedulers: {listing} with these options off."
        )


def clean_latent_estimate(latents: "torch.Tensor", eps: "torch.Tensor", abar: "torch.Tensor") -> "torch.Tensor":
    """The clean-latent estimate ``x0 = (z - sqrt(1 - abar) e) / sqrt(abar)``.

    Parameters
    ----------
    latents : tensor of shape (N, C, h, w)
        Noisy latents ``z`` at a timestep whose cumulative alpha is ``abar``.
    eps : tensor of shape (N, C, h, w)
        Predicted noise ``e``.
    abar : scalar tensor
        Cumulative product of alphas at the timestep.

    Returns
    -------
    tensor of shape (N, C, h, w)
    """
    return (latents - (1 - abar).sqrt() * eps) / abar.sqrt()


def decode_latents(pipe: Any, latents: "torch.Tensor") -> "torch.Tensor":
    """Decode latents with the pipeline's VAE to images in [0, 1], tensor of shape (N, 3, H, W), float32."""
    config = pipe.vae.config
    latents = latents / config.scaling_factor
    if getattr(config, "shift_factor", None) is not None:
        latents = latents + config.shift_factor
    decoded = pipe.vae.decode(latents.to(pipe.vae.dtype)).sample
    return ((decoded.float() + 1) / 2).clamp(0, 1)


def make_scorer(
    encoder: Callable | None,
    objective: Callable | None,
    score_fn: Callable | None,
    image_size: int | Sequence[int] | None,
) -> Callable[["torch.Tensor"], "torch.Tensor"]:
    """One function images (N, 3, H, W) in [0, 1] -> scores (N,), from an encoder + objective or a score_fn."""
    import torch.nn.functional as F

    if (encoder is None) == (score_fn is None):
        raise ValueError("Pass exactly one of 'encoder' (with an optional 'objective') or 'score_fn'.")
    if score_fn is not None and objective is not None:
        raise ValueError("The 'objective' parameter applies to 'encoder'; a 'score_fn' already returns scores.")
    for name, value in (("encoder", encoder), ("objective", objective), ("score_fn", score_fn)):
        if value is not None and not callable(value):
            raise ValueError(f"The '{name}' parameter must be callable. Got {type(value).__name__} instead.")
    size = None
    if image_size is not None:
        size = (int(image_size), int(image_size)) if np.isscalar(image_size) else tuple(int(v) for v in image_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"The 'image_size' parameter must be a positive int or (height, width). Got {image_size!r}.")

    def score(images: "torch.Tensor") -> "torch.Tensor":
        if size is not None and tuple(images.shape[-2:]) != size:
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        if score_fn is not None:
            scores = score_fn(images)
        else:
            responses = encoder(images)
            if responses.ndim != 2 or responses.shape[0] != images.shape[0]:
                raise ValueError(
                    f"The encoder must return responses of shape (n_images, n_units) = ({images.shape[0]}, ...). "
                    f"Got {tuple(responses.shape)}."
                )
            scores = responses.mean(dim=1) if objective is None else objective(responses)
        if tuple(scores.shape) != (images.shape[0],):
            raise ValueError(f"The objective must return one score per image, shape ({images.shape[0]},). Got {tuple(scores.shape)}.")
        return scores

    return score


@dataclasses.dataclass
class _Run:
    """Settings shared by every batch of one synthesis call."""

    pipe: Any
    scorer: Callable
    steps: int
    scale: float
    cfg_scale: float
    cond: "torch.Tensor"
    uncond: "torch.Tensor | None"
    grad_through_unet: bool
    verbose: bool | int


def _predict_eps(
    run: _Run, latents: "torch.Tensor", t: "torch.Tensor", sqrt_abar: "torch.Tensor", sqrt_one_minus: "torch.Tensor"
) -> "torch.Tensor":
    """Noise prediction of the UNet (classifier-free guidance when cfg_scale > 1), as epsilon."""
    import torch

    pipe, n = run.pipe, latents.shape[0]
    model_in = pipe.scheduler.scale_model_input(latents, t).to(pipe.unet.dtype)
    if run.uncond is not None:
        out = pipe.unet(torch.cat([model_in, model_in]), t, encoder_hidden_states=torch.cat([run.uncond[:n], run.cond[:n]])).sample
        uncond, cond = out.float().chunk(2)
        out = uncond + run.cfg_scale * (cond - uncond)
    else:
        out = pipe.unet(model_in, t, encoder_hidden_states=run.cond[:n]).sample.float()
    if pipe.scheduler.config.prediction_type == "v_prediction":
        return sqrt_abar * out + sqrt_one_minus * latents  # z = a x0 + s e and v = a e - s x0
    return out


def _denoise(run: _Run, latents: "torch.Tensor", timesteps: "torch.Tensor", generator: "torch.Generator", desc: str) -> "torch.Tensor":
    """Guided denoising of one batch from ``latents`` along ``timesteps``; returns the final latents (float32)."""
    import torch

    scheduler = run.pipe.scheduler
    abars = scheduler.alphas_cumprod.to(latents.device, torch.float64)
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    guided = run.scale != 0
    for i, t in enumerate(progress(timesteps, verbose=run.verbose, desc=desc, unit="step")):
        abar = abars[int(t)].float()
        a, s = abar.sqrt(), (1 - abar).sqrt()
        z = latents.detach().requires_grad_(guided)
        # Through the UNet only on request: the gradient through VAE decoder and
        # encoder carries the guidance; the UNet's backward pass roughly doubles the step.
        with torch.set_grad_enabled(guided and run.grad_through_unet):
            eps = _predict_eps(run, z, t, a, s)
        if guided:
            with torch.enable_grad():
                score = run.scorer(decode_latents(run.pipe, clean_latent_estimate(z, eps, abar))).sum()
            (grad,) = torch.autograd.grad(score, z)
            eps = eps.detach() - s * run.scale * grad
            if not torch.isfinite(eps).all():
                _non_finite(i, t, run.scale, "noise prediction")
        model_out = (eps - s * latents) / a if scheduler.config.prediction_type == "v_prediction" else eps
        latents = scheduler.step(model_out.to(latents.dtype), t, latents, **step_kwargs).prev_sample.detach()
        if not torch.isfinite(latents).all():
            _non_finite(i, t, run.scale, "latents")
    return latents


def _non_finite(step: int, t: Any, scale: float, what: str) -> None:
    raise FloatingPointError(
        f"Brain guidance produced non-finite {what} (NaN or inf) at step {step} (timestep {int(t)}) with "
        f"guidance_scale={scale:g}; lower guidance_scale."
    )


def _conditioning(
    pipe: Any, prompt: str | None, cfg_scale: float, n: int, device: "torch.device"
) -> tuple["torch.Tensor", "torch.Tensor | None"]:
    """Text conditioning of ``n`` images: the prompt's embeddings (the empty prompt's when None) and, for CFG, the empty prompt's."""
    if getattr(pipe, "text_encoder", None) is None or getattr(pipe, "tokenizer", None) is None:
        raise ValueError("The pipeline needs a text_encoder and a tokenizer (the unconditional embedding is the empty prompt's).")
    cond, uncond = pipe.encode_prompt(prompt or "", device, n, cfg_scale > 1)
    return cond, (uncond if cfg_scale > 1 else None)


def validate_args(
    pipe: Any, seeds: Sequence[int], guidance_scale: float, steps: int, batch_size: int, cfg_scale: float
) -> np.ndarray:
    """Check the arguments shared by the guided samplers; return the seeds as an int array."""
    for name in ("unet", "vae", "scheduler"):
        if getattr(pipe, name, None) is None:
            raise ValueError(f"The 'pipe' parameter must be a latent-diffusion pipeline with a {name}; it has none.")
    check_scheduler(pipe.scheduler)
    seeds = np.asarray(seeds).ravel()
    if seeds.size == 0 or not np.issubdtype(seeds.dtype, np.integer) or (seeds < 0).any():
        raise ValueError(f"The 'seeds' parameter must be a non-empty sequence of non-negative ints. Got {seeds!r}.")
    if not np.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"The 'guidance_scale' parameter must be a finite number >= 0. Got {guidance_scale!r}.")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"The 'num_inference_steps' parameter must be a positive int. Got {steps!r}.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"The 'batch_size' parameter must be a positive int. Got {batch_size!r}.")
    if not np.isfinite(cfg_scale) or cfg_scale < 1:
        raise ValueError(f"The 'cfg_scale' parameter must be >= 1 (1 turns classifier-free guidance off). Got {cfg_scale!r}.")
    return seeds


def pipeline_device(pipe: Any, device: Any) -> "torch.device":
    """The device to sample on: the pipeline's execution device when None, else ``device`` (the pipeline is moved)."""
    from .._device import resolve_device

    if device is None:
        return pipe._execution_device  # honours model CPU offload
    dev = resolve_device(device)
    pipe.to(dev)
    return dev


def sample_guided(
    pipe: Any,
    scorer: Callable[["torch.Tensor"], "torch.Tensor"],
    seeds: np.ndarray,
    *,
    init_latents: "torch.Tensor | None",
    strength: float,
    steps: int,
    guidance_scale: float,
    prompt: str | None,
    cfg_scale: float,
    height: int | None,
    width: int | None,
    batch_size: int,
    grad_through_unet: bool,
    device: Any,
    verbose: bool | int,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Shared body of ``brain_guided_images`` and ``brain_guided_variations``: images, scores and settings of guided runs."""
    import torch

    dev = pipeline_device(pipe, device)
    factor = pipe.vae_scale_factor
    height = height or pipe.unet.config.sample_size * factor
    width = width or pipe.unet.config.sample_size * factor
    if height % factor or width % factor:
        raise ValueError(f"The image height and width must be multiples of {factor}. Got {height}x{width}.")
    shape = (pipe.unet.config.in_channels, height // factor, width // factor)
    cond, uncond = _conditioning(pipe, prompt, cfg_scale, batch_size, dev)
    run = _Run(pipe, scorer, steps, float(guidance_scale), cfg_scale, cond, uncond, grad_through_unet, verbose)
    scheduler = pipe.scheduler
    images, scores = [], []
    for start in range(0, len(seeds), batch_size):
        batch = seeds[start : start + batch_size]
        # Start noise from a CPU generator per seed: identical on every device and batch size.
        noise = torch.stack([
            torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed))) for seed in batch
        ]).to(dev)
        generator = torch.Generator(dev).manual_seed(int(batch[0]))
        scheduler.set_timesteps(steps, device=dev)  # also resets a multistep solver's history
        timesteps = scheduler.timesteps
        if init_latents is None:
            latents = noise * scheduler.init_noise_sigma
        else:
            # img2img: start at the timestep `strength` of the way into the schedule.
            t_start = steps - min(max(int(steps * strength), 1), steps)
            timesteps = timesteps[t_start * scheduler.order :]
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(t_start * scheduler.order)
            latents = scheduler.add_noise(init_latents[start : start + len(batch)], noise, timesteps[:1].repeat(len(batch)))
        desc = f"guided batch {start // batch_size + 1}/{-(-len(seeds) // batch_size)}"
        latents = _denoise(run, latents.to(pipe.unet.dtype), timesteps, generator, desc)
        with torch.no_grad():
            decoded = decode_latents(pipe, latents)
            scores.append(scorer(decoded).float().cpu().numpy())
        images.append(decoded.permute(0, 2, 3, 1).cpu().numpy())
    settings = {
        "guidance_scale": float(guidance_scale), "num_inference_steps": int(steps), "scheduler": type(scheduler).__name__,
        "prompt": prompt, "cfg_scale": float(cfg_scale), "height": int(height), "width": int(width),
        "grad_through_unet": bool(grad_through_unet), "strength": None if init_latents is None else float(strength),
    }
    return np.concatenate(images), np.concatenate(scores), settings

