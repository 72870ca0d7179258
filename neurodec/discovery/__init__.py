"""Discovery with trained models: a differentiable brain encoder, objectives over its units,
in-silico experiments, and stimuli that tell units apart (functional cell types).

Names are imported on first access so that ``import neurodec.discovery`` stays
light (torch and scikit-learn load only when a name that needs them is used)::

    from neurodec.discovery import most_discriminative_stimuli
    result = most_discriminative_stimuli(model, (1, 32, 32), n_clusters=8)
    result.labels, result.stimuli

    from neurodec.discovery import BrainEncoder, roi_mean, predict_responses
    encoder = BrainEncoder.from_fitted(backbone, model, features, responses=responses)
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "BrainEncoder": "encoder",
    "MDSResult": "mds",
    "UnitObjective": "objectives",
    "most_discriminative_stimuli": "mds",
    "one_unit": "objectives",
    "predict_responses": "in_silico",
    "roi_contrast": "objectives",
    "roi_mean": "objectives",
    "weighted_units": "objectives",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
