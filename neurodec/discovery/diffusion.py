"""Load a diffusers latent-diffusion pipeline for brain-guided synthesis, with memory-lean options.

Real weights come from the Hugging Face hub (an id such as
``"stabilityai/stable-diffusion-2-1-base"``) or from a local folder written by
``save_pretrained``. ``HF_HUB_OFFLINE=1`` is honoured by diffusers itself: then
only weights already in the local cache or folder load, and a missing model
raises an error that says so.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any

from .._device import resolve_device
from .._logging import get_logger

if TYPE_CHECKING:
    import torch

__all__ = ["SUPPORTED_SCHEDULERS", "configure_memory", "load_diffusion_pipeline"]

logger = get_logger(__name__)

# Schedulers the guidance can wrap: discrete-time samplers whose step takes the
# noise prediction at an integer timestep indexing ``alphas_cumprod``.
# Euler/Heun/LMS-type samplers work in sigma space (they scale the model input
# and their timesteps are not indices into abar) and are not supported.
SUPPORTED_SCHEDULERS = ("DDIMScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler")
_SCHEDULER_NAMES = {"ddim": "DDIMScheduler", "dpm": "DPMSolverMultistepScheduler", "unipc": "UniPCMultistepScheduler"}


def import_diffusers() -> Any:
    """Import diffusers, making torchvision importable first (diffusers imports it via transformers)."""
    from .._torchvision import enable_torchvision

    enable_torchvision()
    import diffusers

    return diffusers


def load_diffusion_pipeline(
    model: str | os.PathLike,
    *,
    scheduler: str = "dpm",
    torch_dtype: "torch.dtype | str | None" = None,
    device: Any = "auto",
    attention_slicing: bool = False,
    vae_slicing: bool = False,
    vae_tiling: bool = False,
    cpu_offload: bool = False,
    pipeline_class: str = "StableDiffusionPipeline",
) -> Any:
    """Load a Stable-Diffusion-like pipeline and set the sampler the guidance uses.

    Parameters
    ----------
    model : str or path-like
        A hub id (e.g. ``"stabilityai/stable-diffusion-2-1-base"``) or a local
        folder written by ``pipeline.save_pretrained``.
    scheduler : {"dpm", "ddim", "unipc"}
        Sampler built from the pipeline's own scheduler config: DPM-Solver++
        multistep (the BrainDiVE setting), DDIM or UniPC.
    torch_dtype : torch.dtype or {"float16", "bfloat16", "float32"}, optional
        Weight precision; half precision halves GPU memory. Default float32.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        Where the pipeline runs ("auto": CUDA when available). Ignored for
        placement when ``cpu_offload`` is set (diffusers moves each model to
        this device only while it runs).
    attention_slicing, vae_slicing, vae_tiling, cpu_offload : bool
        Memory-lean options for GPUs of <= 24 GB, passed to
        :func:`configure_memory`.
    pipeline_class : str
        Name of the diffusers pipeline class the weights load into, e.g.
        ``"StableUnCLIPImg2ImgPipeline"`` for image-embedding-conditioned
        generation (``"stabilityai/stable-diffusion-2-1-unclip"``).

    Returns
    -------
    diffusers.DiffusionPipeline
        The pipeline (a ``StableDiffusionPipeline`` by default), its safety
        checker removed where it has one (images are scored, not shown to
        users), on ``device``.

    Raises
    ------
    ValueError
        If ``scheduler`` is not one of the supported names, or
        ``pipeline_class`` is not a diffusers pipeline.
    OSError
        If the weights are neither in the given folder nor obtainable (offline
        and not cached), naming the model.
    """
    import torch

    if scheduler not in _SCHEDULER_NAMES:
        raise ValueError(f"The 'scheduler' parameter must be one of {sorted(_SCHEDULER_NAMES)}. Got {scheduler!r} instead.")
    if isinstance(torch_dtype, str):
        if torch_dtype not in ("float16", "bfloat16", "float32"):
            raise ValueError(
                f"The 'torch_dtype' parameter must be 'float16', 'bfloat16', 'float32' or a torch.dtype. Got {torch_dtype!r} instead."
            )
        torch_dtype = getattr(torch, torch_dtype)
    dev = resolve_device(device)
    diffusers = import_diffusers()
    cls = getattr(diffusers, str(pipeline_class), None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline)):
        raise ValueError(
            f"The 'pipeline_class' parameter must name a diffusers pipeline class. Got {pipeline_class!r} instead."
        )
    kwargs: dict[str, Any] = {}
    if "safety_checker" in inspect.signature(cls.__init__).parameters:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if torch_dtype is not None:
        kwargs["torch_dtype"] = torch_dtype
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        pipe = cls.from_pretrained(os.fspath(model), **kwargs)
    except (OSError, ValueError) as exc:
        where = "a local folder" if os.path.isdir(os.fspath(model)) else "the Hugging Face hub"
        hint = " HF_HUB_OFFLINE is set: download the weights on a connected machine first." if offline else ""
        raise OSError(f"Could not load the diffusion pipeline {os.fspath(model)!r} from {where}.{hint} ({exc})") from exc
    pipe.scheduler = getattr(diffusers, _SCHEDULER_NAMES[scheduler]).from_config(pipe.scheduler.config)
    if not cpu_offload:
        pipe = pipe.to(dev)
    configure_memory(
        pipe, attention_slicing=attention_slicing, vae_slicing=vae_slicing, vae_tiling=vae_tiling,
        cpu_offload=cpu_offload, device=dev,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def configure_memory(
    pipe: Any,
    *,
    attention_slicing: bool = False,
    vae_slicing: bool = False,
    vae_tiling: bool = False,
    cpu_offload: bool = False,
    device: Any = "auto",
) -> Any:
    """Turn on diffusers' own memory-saving options of a pipeline.

    Parameters
    ----------
    pipe : diffusers pipeline
        A Stable-Diffusion-like pipeline.
    attention_slicing : bool
        Compute attention in slices (``pipe.enable_attention_slicing``).
    vae_slicing : bool
        Decode a batch one image at a time (``pipe.vae.enable_slicing``).
    vae_tiling : bool
        Decode in overlapping tiles (``pipe.vae.enable_tiling``), for large images.
    cpu_offload : bool
        Keep models on the CPU and move each to ``device`` only while it runs
        (``pipe.enable_model_cpu_offload``; needs the ``accelerate`` package
        and a CUDA device).
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        The execution device of the offloaded models.

    Returns
    -------
    diffusers pipeline
        ``pipe`` itself, configured in place.

    Raises
    ------
    ValueError
        If the pipeline lacks a method an option needs.
    """

    def call(owner: Any, method: str, option: str, *args: Any, **kwargs: Any) -> None:
        if not hasattr(owner, method):
            raise ValueError(f"The '{option}' option needs {type(owner).__name__}.{method}, which this pipeline lacks.")
        getattr(owner, method)(*args, **kwargs)

    if attention_slicing:
        call(pipe, "enable_attention_slicing", "attention_slicing")
    if vae_slicing:
        call(pipe.vae, "enable_slicing", "vae_slicing")
    if vae_tiling:
        call(pipe.vae, "enable_tiling", "vae_tiling")
    if cpu_offload:
        dev = resolve_device(device)
        if dev.type != "cuda":
            raise ValueError(f"The 'cpu_offload' option offloads to a CUDA device; got device {str(dev)!r}.")
        call(pipe, "enable_model_cpu_offload", "cpu_offload", device=dev)
    return pipe
