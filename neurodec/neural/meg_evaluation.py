"""Train the MEG image decoder and score it beside the linear ridge decoder, always both.

The protocol of Benchetrit, Banville & King (2023): the network is trained
on the dataset's train trials (a fraction of the train *images* held out for
early stopping), its predictions on the test trials are averaged over the
repeats of each test image, and top-1/top-5 retrieval ranks every test
image's prediction against the true embeddings of all test images. The
linear baseline (flattened epochs, z-scored with train statistics, ridge
with per-target cross-validated regularization) is fitted on the same train
trials and scored the same way, in the same call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._docs import fill_doc
from .._logging import get_logger

__all__ = ["MEGDecodingResult", "evaluate_meg_decoder", "meg_decoder_inputs"]

logger = get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class MEGDecodingResult:
    """Scores of :func:`evaluate_meg_decoder`: the network and the ridge baseline.

    Attributes
    ----------
    scores : dict
        ``{"decoder": {"top1", "top5"}, "ridge": {"top1", "top5"}, "chance": {"top1", "top5"}}``,
        image retrieval (brain -> image) among all ``n_test`` test images.
    n_test : int
        Test images retrieved among.
    test_ids : array of shape (n_test,)
        Their stimulus ids.
    decoder_predictions, ridge_predictions : array of shape (n_test, n_outputs)
        Predictions averaged over each test image's trials (z-scored embedding space).
    true_embeddings : array of shape (n_test, n_outputs)
        Test embeddings, z-scored with the train statistics.
    training : TrainingResult
        The network's training run (model, history, best epoch).
    ridge : neurodec.ridge.RidgeCV
        The fitted linear decoder.
    """

    scores: dict[str, dict[str, float]]
    n_test: int
    test_ids: np.ndarray
    decoder_predictions: np.ndarray
    ridge_predictions: np.ndarray
    true_embeddings: np.ndarray
    training: Any
    ridge: Any


def _positions(responses: Any, positions: Any) -> np.ndarray:
    if positions is not None:
        return np.asarray(positions, dtype=np.float64)
    units = responses.units
    cols = [c for c in ("x", "y", "z") if c in units.columns]
    if len(cols) < 2 or units[cols].isna().any().any():
        raise ValueError("evaluate_meg_decoder needs sensor positions: the responses' 'units' table has no complete "
                         f"'x', 'y'(, 'z') columns (it has {list(units.columns)}); pass 'positions'.")
    return units[cols].to_numpy(dtype=np.float64)


def meg_decoder_inputs(responses: Any, embeddings: Any, *, positions: Any = None) -> dict[str, Any]:
    """Stack one or more subjects' MEG epochs with their image embeddings.

    Parameters
    ----------
    responses : Responses or sequence of Responses
        Time-resolved responses, data of shape (n_trials, n_channels,
        n_times); several subjects must share channels and times.
    embeddings : neurodec.data.Features
        Image embedding of every stimulus id the trials show.
    positions : array of shape (n_channels, 2) or (n_channels, 3), optional
        Sensor positions; default the ``x, y, z`` columns of the first
        subject's units.

    Returns
    -------
    dict
        ``X`` float32 array of shape (n_trials, n_channels, n_times),
        ``subject`` int64 array of shape (n_trials,), ``Y`` float32 array
        of shape (n_trials, n_outputs), ``stimulus_id``, ``split`` arrays of
        shape (n_trials,), ``positions``.
    """
    subjects = [responses] if not isinstance(responses, Sequence) else list(responses)
    if not subjects:
        raise ValueError("The 'responses' parameter is an empty sequence.")
    first = subjects[0]
    for r in subjects:
        if r.data.ndim != 3:
            raise ValueError(f"The 'responses' of {r.subject} must be time-resolved, data of shape (n_trials, "
                             f"n_channels, n_times). Got shape {r.data.shape}.")
        if r.data.shape[1:] != first.data.shape[1:]:
            raise ValueError(f"Every subject's responses must share channels and times: {r.subject} has "
                             f"{r.data.shape[1:]}, {first.subject} has {first.data.shape[1:]}.")
    trials = [r.trials for r in subjects]
    stimulus_id = np.concatenate([t["stimulus_id"].to_numpy() for t in trials])
    split = np.concatenate([t["split"].to_numpy() for t in trials]).astype(str)
    if not {"train", "test"} <= set(split):
        raise ValueError(f"The responses need 'train' and 'test' trials in trials['split']. Got {sorted(set(split))}.")
    return {
        "X": np.concatenate([np.asarray(r.data, dtype=np.float32) for r in subjects]),
        "subject": np.concatenate([np.full(r.n_trials, i, dtype=np.int64) for i, r in enumerate(subjects)]),
        "Y": np.asarray(embeddings.align(stimulus_id), dtype=np.float32),
        "stimulus_id": stimulus_id,
        "split": split,
        "positions": _positions(first, positions),
    }


def _standardize(X: np.ndarray, subject: np.ndarray, fit: np.ndarray, clamp: float) -> np.ndarray:
    """Per subject and channel, with the mean/std of its train trials; clamped (the paper's robust guard)."""
    out = np.empty_like(X)
    for s in np.unique(subject):
        rows = subject == s
        ref = X[rows & fit]
        mean = ref.mean(axis=(0, 2), keepdims=True)
        std = ref.std(axis=(0, 2), keepdims=True)
        out[rows] = np.clip((X[rows] - mean) / np.where(std > 0, std, 1.0), -clamp, clamp)
    return out


def _average_by_stimulus(pred: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, inverse = np.unique(ids, return_inverse=True)
    sums = np.zeros((len(unique), pred.shape[1]))
    np.add.at(sums, inverse, pred)
    return unique, sums / np.bincount(inverse)[:, None]


def _retrieval(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    from ..metrics import retrieval_top_k

    n = len(true)
    return {f"top{k}": retrieval_top_k(pred, true, k=k, n_way=n, n_draws=1).image_retrieval for k in (1, 5)}


def _predict(model: Any, X: np.ndarray, subject: np.ndarray, batch_size: int) -> np.ndarray:
    import torch

    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            x = torch.as_tensor(X[start:start + batch_size], device=device)
            s = torch.as_tensor(subject[start:start + batch_size], device=device)
            out.append(model(x, s)[0].float().cpu().numpy())
    return np.concatenate(out)


@fill_doc
def evaluate_meg_decoder(
    responses: Any,
    embeddings: Any,
    *,
    positions: Any = None,
    model_params: dict[str, Any] | None = None,
    lam: float = 0.5,
    n_epochs: int = 40,
    batch_size: int = 128,
    lr: float = 3e-4,
    weight_decay: float = 0.0,
    val_fraction: float = 0.1,
    patience: int | None = 10,
    clamp: float = 20.0,
    ridge_alphas: Any = None,
    precision: str = "auto",
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    random_state: int = 0,
    device: Any = "auto",
    verbose: bool | int = False,
) -> MEGDecodingResult:
    """Train the MEG decoder, fit the ridge baseline, and score both by test-image retrieval.

    Parameters
    ----------
    responses : Responses or sequence of Responses
        MEG epochs of one or more subjects (see :func:`meg_decoder_inputs`),
        with ``trials["split"]`` "train"/"test".
    embeddings : neurodec.data.Features
        Image embedding of every stimulus (e.g. CLIP image features).
    positions : array of shape (n_channels, 2) or (n_channels, 3), optional
        Sensor positions; default the units' ``x, y, z`` columns.
    model_params : dict, optional
        Keyword arguments of :class:`~neurodec.neural.MEGDecoder` (sizes,
        aggregation, dropout, temperature).
    lam : float
        Weight of the contrastive term of :func:`~neurodec.neural.clip_mse_loss`.
    n_epochs, batch_size, lr, weight_decay, patience, precision, checkpoint_dir, resume
        Passed to :func:`~neurodec.neural.fit_network` (batches are full: the
        contrastive loss's negatives are the batch).
    val_fraction : float in (0, 1)
        Fraction of the train images (all their trials) held out for early stopping.
    clamp : float
        Inputs are z-scored per subject and channel with train statistics and clipped to ``[-clamp, clamp]``.
    ridge_alphas : array of shape (n_alphas,), optional
        Regularization grid of the ridge baseline (default ``logspace(-1, 7, 17)``).
    %(random_state)s
    %(device)s
    %(verbose)s

    Returns
    -------
    MEGDecodingResult
    """
    import torch

    from ..ridge import RidgeCV
    from .meg_decoder import MEGDecoder
    from .meg_loss import clip_mse_loss
    from .training import fit_network, seed_everything

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"The 'val_fraction' parameter must be in (0, 1). Got {val_fraction!r}.")
    d = meg_decoder_inputs(responses, embeddings, positions=positions)
    train = d["split"] == "train"
    test = d["split"] == "test"
    rng = np.random.default_rng(random_state)
    train_images = np.unique(d["stimulus_id"][train])
    val_images = rng.choice(train_images, size=max(1, int(round(val_fraction * len(train_images)))), replace=False)
    val = train & np.isin(d["stimulus_id"], val_images)
    fit = train & ~val
    # Targets z-scored with train statistics: the MSE head regresses them, and both decoders are scored on them.
    y_mean, y_std = d["Y"][train].mean(axis=0), d["Y"][train].std(axis=0)
    Y = ((d["Y"] - y_mean) / np.where(y_std > 0, y_std, 1.0)).astype(np.float32)
    X = _standardize(d["X"], d["subject"], train, clamp)

    seed_everything(random_state)
    model = MEGDecoder(d["positions"], X.shape[2], Y.shape[1], n_subjects=int(d["subject"].max()) + 1,
                       **(model_params or {}))

    def loss_fn(net: Any, batch: Any) -> dict[str, Any]:
        x, subject, y = batch
        clip, mse = net(x, subject)
        return clip_mse_loss(clip, mse, y, logit_scale=net.logit_scale, lam=lam)

    n_fit = int(fit.sum())
    training = fit_network(
        model, (X[fit], d["subject"][fit], Y[fit]), loss_fn, val_data=(X[val], d["subject"][val], Y[val]),
        n_epochs=n_epochs, batch_size=min(batch_size, n_fit), drop_last=True, lr=lr, weight_decay=weight_decay,
        patience=patience, precision=precision, checkpoint_dir=checkpoint_dir, resume=resume,
        random_state=random_state, device=device, verbose=verbose,
    )
    test_ids, decoder_pred = _average_by_stimulus(_predict(training.model, X[test], d["subject"][test], batch_size),
                                                  d["stimulus_id"][test])

    # The linear baseline on the same trials: flattened raw epochs, z-scored per feature with train statistics.
    flat = d["X"].reshape(len(X), -1).astype(np.float64)
    f_mean, f_std = flat[train].mean(axis=0), flat[train].std(axis=0)
    flat = (flat - f_mean) / np.where(f_std > 0, f_std, 1.0)
    alphas = np.logspace(-1, 7, 17) if ridge_alphas is None else ridge_alphas
    ridge = RidgeCV(alphas=alphas, device=device, warn_alpha_edge=False, verbose=verbose).fit(flat[train], Y[train])
    ridge_pred = np.asarray(torch.as_tensor(ridge.predict(flat[test])).cpu(), dtype=np.float64)
    _, ridge_pred = _average_by_stimulus(ridge_pred, d["stimulus_id"][test])

    true = Y[test][np.unique(d["stimulus_id"][test], return_index=True)[1]]
    n_test = len(test_ids)
    scores = {"decoder": _retrieval(decoder_pred, true), "ridge": _retrieval(ridge_pred, true),
              "chance": {"top1": 1 / n_test, "top5": min(5, n_test) / n_test}}
    logger.info("MEG decoding on %d test images: decoder %s, ridge %s", n_test, scores["decoder"], scores["ridge"])
    return MEGDecodingResult(scores=scores, n_test=n_test, test_ids=test_ids, decoder_predictions=decoder_pred,
                             ridge_predictions=ridge_pred, true_embeddings=true, training=training, ridge=ridge)
