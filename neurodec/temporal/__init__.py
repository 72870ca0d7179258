"""Temporal receptive fields and time-resolved decoding on the exact ridge solvers.

For MEG, iEEG and other time-resolved recordings: :class:`TemporalReceptiveField`
(stimulus features at many delays -> each channel, per-channel CV ridge),
:class:`SlidingRidge` / :class:`SlidingRidgeClassifier` (one decoder per time
point) and :class:`GeneralizingRidge` (train at t, test at every t'), all
batched over time points, with :func:`cross_val_time_scores` and max-statistic
:func:`permutation_test`. Attributes are imported on first access, so that
``import neurodec.temporal`` imports neither torch nor mne.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_ATTRIBUTES = {
    "TemporalReceptiveField": "receptive_field",
    "SlidingRidge": "sliding",
    "SlidingRidgeClassifier": "classifier",
    "GeneralizingRidge": "generalizing",
    "cross_val_time_scores": "stats",
    "permutation_test": "stats",
    "PermutationTestResult": "stats",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _ATTRIBUTES)
