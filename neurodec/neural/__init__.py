"""Trainable networks for time-resolved brain data, and the training loop they share.

:func:`fit_network` trains any torch module with a caller-given loss:
seeded, checkpointed atomically every epoch, resumable exactly, with early
stopping on a validation split, mixed precision on GPU and a metrics log.
Names are imported on first access, so ``import neurodec.neural`` does not
import torch::

    from neurodec.neural import fit_network, seed_everything
    from neurodec.neural import evaluate_meg_decoder  # the MEG decoder beside the ridge baseline

    from neurodec.neural import IEEGTransformer, pretrain_masked_latent, evaluate_ieeg_probe
    encoder = IEEGTransformer.from_responses(responses, "region", patch_len=32)
    pretrain_masked_latent(encoder, responses.split("train"))
    evaluate_ieeg_probe(encoder, responses, "condition")  # ROC-AUC beside the linear baseline
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "TrainingResult": "training",
    "fit_network": "training",
    "seed_everything": "training",
    "resolve_precision": "training",
    "MEGDecoder": "meg_decoder",
    "sensor_layout_2d": "meg_decoder",
    "clip_mse_loss": "meg_loss",
    "gather_batch": "meg_loss",
    "MEGDecodingResult": "meg_evaluation",
    "evaluate_meg_decoder": "meg_evaluation",
    "meg_decoder_inputs": "meg_evaluation",
}

# iEEG spatiotemporal transformer
_EXPORTS.update({
    "IEEGTransformer": "ieeg_transformer",
    "MaskedLatentPretraining": "ieeg_pretraining",
    "PretrainingResult": "ieeg_pretraining",
    "ProbeResult": "ieeg_probe",
    "SpatialLayout": "ieeg_tokens",
    "evaluate_ieeg_probe": "ieeg_probe",
    "linear_baseline_roc_auc": "ieeg_probe",
    "make_token_mask": "ieeg_transformer",
    "null_auc_sd": "ieeg_probe",
    "pretrain_masked_latent": "ieeg_pretraining",
    "spatial_layout": "ieeg_tokens",
})

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
