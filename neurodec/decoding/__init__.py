"""Decoding from brain responses: brain -> embedding decoders, retrieval, image reconstruction, brain captioning.

Names are imported on first access so that ``import neurodec.decoding`` stays
light (torch and diffusers load only when a name that needs them is used)::

    from neurodec.decoding import load_reconstruction_pipeline, reconstruct_images
    pipe = load_reconstruction_pipeline("stabilityai/stable-diffusion-2-1-unclip", torch_dtype="float16")
    result = reconstruct_images(pipe, decoded_clip_embeddings, init_latents=decoded_vae_latents, strength=0.75)
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {}

# Image reconstruction with diffusers (reconstruction.py).
_EXPORTS.update({
    "Reconstructions": "reconstruction",
    "decode_latents_to_images": "reconstruction",
    "encode_images_to_latents": "reconstruction",
    "load_reconstruction_pipeline": "reconstruction",
    "pipeline_embedding_dim": "reconstruction",
    "reconstruct_images": "reconstruction",
})

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
