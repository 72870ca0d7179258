"""Decoding from brain responses: linear decoders to embeddings, brain captioning, evaluation hygiene.

Names are imported on first access so that ``import neurodec.decoding`` does
not import torch or scikit-learn::

    from neurodec.decoding import LinearDecoder
    decoder = LinearDecoder(restandardize=True).fit(train_betas, train_clip_tokens)
    decoded = decoder.predict(test_betas)   # (n_test, 257, 768)
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

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
