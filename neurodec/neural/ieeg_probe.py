"""Downstream probe of the iEEG transformer, always beside the linear baseline.

A binary task (speech vs music, sentence onset...) is scored by ROC-AUC on
held-out trials, as the iEEG foundation-model papers do. The probe is a linear
head on the mean of the encoder's tokens: on a frozen encoder (logistic
classifier on its embeddings) or fine-tuned with it. Linear models on per-
channel high-gamma features match or beat iEEG foundation models on many
tasks (Neuroprobe, 2025), so every probe result carries that baseline too:
a ridge classifier on each channel's mean envelope in ``n_windows`` time
windows of the same epochs.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .._device import resolve_device
from .._docs import fill_doc
from .._logging import progress
from .ieeg_pretraining import _as_epochs
from .ieeg_transformer import IEEGTransformer

__all__ = ["ProbeResult", "evaluate_ieeg_probe", "linear_baseline_roc_auc", "null_auc_sd"]


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """ROC-AUC of the transformer probe and of the linear baseline on the same test trials.

    Attributes
    ----------
    roc_auc : float
        The transformer probe's ROC-AUC on the test trials.
    baseline_roc_auc : float
        The linear baseline's ROC-AUC on the same trials.
    n_train, n_positive, n_negative : int
        Training trials, and positive and negative test trials.
    finetuned : bool
        Whether the encoder was fine-tuned with the head (else frozen).
    chance_sd : float
        Standard deviation of the ROC-AUC of a classifier at chance on these
        test trials (:func:`null_auc_sd`): the scale of differences worth reading.
    """

    roc_auc: float
    baseline_roc_auc: float
    n_train: int
    n_positive: int
    n_negative: int
    finetuned: bool
    chance_sd: float


def null_auc_sd(n_positive: int, n_negative: int) -> float:
    """Standard deviation of the ROC-AUC of random scores (Mann-Whitney U under the null hypothesis).

    ``sqrt((n_positive + n_negative + 1) / (12 * n_positive * n_negative))``.
    """
    return math.sqrt((n_positive + n_negative + 1) / (12.0 * n_positive * n_negative))


def linear_baseline_roc_auc(
    train_data: Any, train_labels: np.ndarray, test_data: Any, test_labels: np.ndarray, *, n_windows: int = 4
) -> float:
    """ROC-AUC of a ridge classifier on per-channel high-gamma features.

    Parameters
    ----------
    train_data, test_data : array of shape (n_samples, n_channels, n_times)
        High-gamma envelopes (e.g. ``load_bids_ieeg(..., high_gamma=True)`` epochs).
    train_labels, test_labels : array of shape (n_samples,) of 0/1
    n_windows : int
        Equal time windows per epoch; a channel's feature in a window is its mean envelope there.

    Returns
    -------
    float
    """
    from sklearn.metrics import roc_auc_score

    train_x, test_x = (_window_means(np.asarray(d, dtype=np.float64), n_windows) for d in (train_data, test_data))
    return float(roc_auc_score(test_labels, _linear_scores(train_x, train_labels, test_x)))


def _linear_scores(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """Decision values of a ridge classifier (penalty chosen by leave-one-out) on standardized features."""
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-2, 5, 15)))
    return clf.fit(train_x, train_y).decision_function(test_x)


@fill_doc
def evaluate_ieeg_probe(
    encoder: IEEGTransformer,
    responses: Any,
    labels: str | np.ndarray,
    *,
    positive: Any = None,
    finetune: bool = False,
    n_epochs: int = 20,
    batch_size: int = 32,
    lr: float = 3e-4,
    n_windows: int = 4,
    random_state: int | None = 0,
    device: Any = "auto",
    verbose: bool | int = True,
) -> ProbeResult:
    """Score ``encoder`` on a binary task of ``responses`` by ROC-AUC, with the linear baseline beside it.

    Parameters
    ----------
    encoder : IEEGTransformer
        Pretrained encoder; left unchanged (fine-tuning works on a copy).
    responses : Responses
        Time-resolved iEEG epochs (high-gamma envelopes) with the dataset's
        ``split`` column: the probe trains on "train" trials, scores "test" ones.
    labels : str or array of shape (n_trials,)
        Column of ``responses.trials`` holding the two classes, or the classes.
    positive : optional
        The class scored as positive (default: the larger of the two in sort order).
    finetune : bool
        Train the encoder with the head (AdamW, ``n_epochs``, ``lr``); else
        freeze it and fit a ridge classifier (penalty by leave-one-out) on its embeddings.
    n_epochs, batch_size : int
        Fine-tuning passes and batch size (``batch_size`` also batches the frozen embeddings).
    lr : float
        Fine-tuning learning rate.
    n_windows : int
        Time windows of the linear baseline's features (:func:`linear_baseline_roc_auc`).
    %(random_state)s
    %(device)s
    %(verbose)s

    Returns
    -------
    ProbeResult
    """
    from sklearn.metrics import roc_auc_score

    y, split = _binary_labels(responses, labels, positive)
    data = _as_epochs(responses, "responses")
    train, test = split == "train", split == "test"
    for name, part in (("train", train), ("test", test)):
        if len(np.unique(y[part])) != 2:
            raise ValueError(f"The probe needs both classes among the {name!r} trials. Got classes {np.unique(y[part])}.")
    dev = resolve_device(device)
    seed = int(np.random.default_rng(random_state).integers(2**31))
    if finetune:
        scores = _finetune_scores(encoder, data, y, train, test, n_epochs=n_epochs, batch_size=batch_size, lr=lr,
                                  seed=seed, device=dev, verbose=verbose)
    else:
        scores = _frozen_scores(encoder, data, y, train, test, batch_size=batch_size, seed=seed, device=dev)
    baseline = linear_baseline_roc_auc(data[train].numpy(), y[train], data[test].numpy(), y[test],
                                       n_windows=n_windows)
    n_pos, n_neg = int(y[test].sum()), int((1 - y[test]).sum())
    return ProbeResult(float(roc_auc_score(y[test], scores)), baseline, int(train.sum()), n_pos, n_neg,
                       bool(finetune), null_auc_sd(n_pos, n_neg))


def _binary_labels(responses: Any, labels: Any, positive: Any) -> tuple[np.ndarray, np.ndarray]:
    trials = getattr(responses, "trials", None)
    if trials is None:
        raise ValueError(f"The 'responses' parameter must be a Responses. Got {type(responses).__name__} instead.")
    if isinstance(labels, str):
        if labels not in trials.columns:
            raise ValueError(f"'responses.trials' has no column {labels!r} (columns: {list(trials.columns)}).")
        labels = trials[labels].to_numpy()
    labels = np.asarray(labels)
    if labels.shape != (len(trials),):
        raise ValueError(f"'labels' must hold one class per trial, shape ({len(trials)},). Got {labels.shape}.")
    classes = np.unique(labels)
    if len(classes) != 2:
        raise ValueError(f"The probe scores a binary task; 'labels' must hold exactly 2 classes. Got {classes}.")
    positive = classes[1] if positive is None else positive
    if positive not in classes:
        raise ValueError(f"The 'positive' class {positive!r} is not one of the labels' classes {list(classes)}.")
    return (labels == positive).astype(np.int64), trials["split"].to_numpy()


def _window_means(data: np.ndarray, n_windows: int) -> np.ndarray:
    if isinstance(n_windows, bool) or not isinstance(n_windows, (int, np.integer)) or not 1 <= n_windows <= data.shape[2]:
        raise ValueError(f"'n_windows' must be an integer between 1 and n_times ({data.shape[2]}). Got {n_windows!r}.")
    windows = np.array_split(np.arange(data.shape[2]), n_windows)
    return np.stack([data[:, :, w].mean(axis=2) for w in windows], axis=2).reshape(len(data), -1)


@torch.no_grad()
def _embeddings(encoder: IEEGTransformer, data: torch.Tensor, batch_size: int, device: torch.device) -> np.ndarray:
    encoder.eval()
    return torch.cat([encoder.embed(b.to(device)).float().cpu() for b in data.split(batch_size)]).numpy()


def _frozen_scores(encoder: IEEGTransformer, data: torch.Tensor, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                   *, batch_size: int, seed: int, device: torch.device) -> np.ndarray:
    encoder.to(device)
    features = _embeddings(encoder, data, batch_size, device)
    return _linear_scores(features[train], y[train], features[test])


def _finetune_scores(encoder: IEEGTransformer, data: torch.Tensor, y: np.ndarray, train: np.ndarray,
                     test: np.ndarray, *, n_epochs: int, batch_size: int, lr: float, seed: int,
                     device: torch.device, verbose: bool | int) -> np.ndarray:
    torch.manual_seed(seed)
    model = copy.deepcopy(encoder).to(device).train()
    head = nn.Linear(model.layout.n_groups * model.d_model, 1).to(device)
    optimizer = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    x_train, y_train = data[train], torch.as_tensor(y[train], dtype=torch.float32)
    for _ in progress(range(n_epochs), verbose=verbose, desc="fine-tuning", unit="epoch"):
        for batch in torch.randperm(len(x_train), generator=generator).split(batch_size):
            logits = head(model.embed(x_train[batch].to(device))).squeeze(1)
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), y_train[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return torch.cat([head(model.embed(b.to(device))).squeeze(1).float().cpu()
                          for b in data[test].split(batch_size)]).numpy()
