"""Decoding metrics as the field computes them: retrieval, image reconstruction, captions.

Each metric follows one named protocol, stated in its docstring with its
citation (retrieval and image metrics: Brain-Diffuser and the MindEye
lineage; captions: the COCO caption evaluation, pycocoevalcap). Names are
imported on first access so that ``import neurodec.metrics`` stays light::

    from neurodec.metrics import pixcorr, retrieval_top_k, ssim
    retrieval_top_k(decoded, true_embeddings, random_state=0).image_retrieval
    ssim(reconstructions, ground_truths).mean
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "RetrievalResult": "retrieval",
    "retrieval_top_k": "retrieval",
    "ImageScores": "images",
    "pixcorr": "images",
    "ssim": "images",
    "two_way_identification": "identification",
    "correlation_distance": "identification",
    "FEATURE_METRICS": "features",
    "FeatureMetric": "features",
    "feature_metric": "features",
    "metric_features": "features",
    "CAPTION_PROTOCOLS": "captions",
    "CaptionScores": "captions",
    "caption_scores": "captions",
    "sentence_similarity": "captions",
    "text_embedding_similarity": "captions",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
