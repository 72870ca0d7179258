"""Discovery with trained models: a differentiable brain encoder, objectives over its units,
in-silico experiments, stimuli that tell units apart (functional cell types), brain-guided
image synthesis (BrainDiVE) and voxel captions (BrainSCUBA, LaVCa).

Names are imported on first access so that ``import neurodec.discovery`` stays
light (torch and scikit-learn load only when a name that needs them is used)::

    from neurodec.discovery import most_discriminative_stimuli
    result = most_discriminative_stimuli(model, (1, 32, 32), n_clusters=8)
    result.labels, result.stimuli

    from neurodec.discovery import BrainEncoder, roi_mean, predict_responses
    encoder = BrainEncoder.from_fitted(backbone, model, features, responses=responses)

    from neurodec.discovery import PrefixCaptioner, brainscuba_captions, lavca_captions, score_captions

    from neurodec.discovery import brain_guided_images, load_diffusion_pipeline
    pipe = load_diffusion_pipeline("stabilityai/stable-diffusion-2-1-base")
    images = brain_guided_images(pipe, encoder, seeds=range(64), image_size=224)
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "ActivationComparison": "braindive_eval",
    "BrainEncoder": "encoder",
    "CategoryShares": "braindive_eval",
    "DEFAULT_CATEGORIES": "braindive_eval",
    "GuidedImages": "guided_images",
    "MDSResult": "mds",
    "PrefixCaptioner": "captioner",
    "SUPPORTED_SCHEDULERS": "diffusion",
    "UnitObjective": "objectives",
    "brain_guided_images": "braindive",
    "brain_guided_variations": "braindive",
    "brainscuba_captions": "voxel_captions",
    "clip_embedding_fns": "braindive_eval",
    "compare_predicted_activation": "braindive_eval",
    "configure_memory": "diffusion",
    "lavca_captions": "lavca",
    "load_diffusion_pipeline": "diffusion",
    "load_prefix_captioner": "captioner_io",
    "make_small_diffusion_pipeline": "small_models",
    "make_small_language_model": "small_models",
    "make_small_unclip_pipeline": "small_models",
    "most_discriminative_stimuli": "mds",
    "one_unit": "objectives",
    "predict_responses": "in_silico",
    "project_to_image_embeddings": "voxel_captions",
    "roi_contrast": "objectives",
    "roi_mean": "objectives",
    "score_captions": "lavca",
    "weighted_units": "objectives",
    "zero_shot_category_shares": "braindive_eval",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
