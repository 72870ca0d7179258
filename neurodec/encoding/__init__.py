"""Encoding models: voxel-wise fits, temporal receptive fields, held-out scores, noise ceilings, statistics.

Names are imported on first access so that ``import neurodec.encoding`` stays
light (the estimator pulls in scikit-learn and torch only when used)::

    from neurodec.encoding import EncodingModel
    model = EncodingModel(alphas=np.logspace(0, 6, 7)).fit(features, responses)
    scores = model.score(features, responses)
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "EncodingModel": "model",
    "load_encoding_model": "storage",
    "save_encoding_model": "storage",
    "fit_or_load_encoding_model": "storage",
    "load_matching_encoding_model": "storage",
    "EncodingScores": "scores",
    "normalize_by_noise_ceiling": "scores",
    "pearson_r": "scores",
    "r2_score": "scores",
    "estimate_ncsnr": "noise_ceiling",
    "compute_noise_ceiling": "noise_ceiling",
    "PermutationResult": "stats",
    "fdr_correction": "stats",
    "permutation_test": "stats",
    "ROIBootstrap": "bootstrap",
    "VariancePartition": "partition",
    "fit_variance_partition": "partition",
    "partition_variance": "partition",
    "best_layer": "compare",
    "best_model_per_roi": "compare",
    "compare_models": "compare",
    "summarize_rois": "compare",
    "write_encoding_outputs": "outputs",
    "TemporalReceptiveField": "receptive_field",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
