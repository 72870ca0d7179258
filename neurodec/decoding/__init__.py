"""Decoding from brain responses: linear decoders to embeddings, time-resolved decoders, reconstruction, brain captioning.

Names are imported on first access so that ``import neurodec.decoding`` does
not import torch, scikit-learn or diffusers::

    from neurodec.decoding import LinearDecoder
    decoder = LinearDecoder(restandardize=True).fit(train_betas, train_clip_tokens)
    decoded = decoder.predict(test_betas)   # (n_test, 257, 768)

    from neurodec.decoding import load_reconstruction_pipeline, reconstruct_images
    pipe = load_reconstruction_pipeline("stabilityai/stable-diffusion-2-1-unclip", torch_dtype="float16")
    result = reconstruct_images(pipe, decoded_clip_embeddings, init_latents=decoded_vae_latents, strength=0.75)
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "DECODER_ALPHAS": "linear",
    "LinearDecoder": "linear",
    "restandardize": "linear",
    "BrainCaptions": "captioning",
    "brain_captions": "captioning",
    "evaluate_brain_captions": "captioning",
    "nearest_training_captions": "captioning",
    "DecodingSummary": "evaluation",
    "aggregate_evaluations": "evaluation",
    "evaluate_decoding": "evaluation",
    "nearest_train_similarity": "evaluation",
    "per_sample_retrieval": "evaluation",
}

# Image reconstruction with diffusers (reconstruction.py).
_EXPORTS.update({
    "Reconstructions": "reconstruction",
    "decode_latents_to_images": "reconstruction",
    "encode_images_to_latents": "reconstruction",
    "load_reconstruction_pipeline": "reconstruction",
    "pipeline_embedding_dim": "reconstruction",
    "reconstruct_images": "reconstruction",
})

# Time-resolved decoding (MEG, iEEG): one ridge decoder per time point, batched over time.
_EXPORTS.update({
    "SlidingRidge": "sliding",
    "SlidingRidgeClassifier": "sliding_classifier",
    "GeneralizingRidge": "generalizing",
    "cross_val_time_scores": "time_resolved_stats",
    "time_permutation_test": "time_resolved_stats",
    "TimePermutationResult": "time_resolved_stats",
})

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
