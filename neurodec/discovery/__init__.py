"""Discovery with trained models: stimuli that tell units apart, functional cell types, voxel captions.

Names are imported on first access so that ``import neurodec.discovery`` stays
light (torch and scikit-learn load only when a name that needs them is used)::

    from neurodec.discovery import most_discriminative_stimuli
    result = most_discriminative_stimuli(model, (1, 32, 32), n_clusters=8)
    result.labels, result.stimuli

    from neurodec.discovery import PrefixCaptioner, brainscuba_captions, lavca_captions, score_captions
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "MDSResult": "mds",
    "PrefixCaptioner": "captioner",
    "brainscuba_captions": "voxel_captions",
    "lavca_captions": "lavca",
    "load_prefix_captioner": "captioner_io",
    "most_discriminative_stimuli": "mds",
    "project_to_image_embeddings": "voxel_captions",
    "score_captions": "lavca",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
