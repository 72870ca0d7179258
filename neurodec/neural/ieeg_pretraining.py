"""Masked latent reconstruction: self-supervised pretraining of the iEEG transformer.

Some spatiotemporal tokens are hidden from the encoder (their content replaced
by a learned mask token) and a small predictor must reproduce, at the hidden
positions, the latents that a teacher encoder computes from the full input
(BaRISTA, 2025; the teacher is an exponential moving average of the student,
as in data2vec and I-JEPA). Targets are the teacher's final tokens, layer-
normalized per token (data2vec) and then standardized per token position and
feature across the batch. The second step removes what a token's position
alone predicts: position embeddings otherwise dominate the latents, and a
student that learns only positions would drive the loss down while learning
nothing about the signal. Predicting 0 scores about 1; a loss below 1 means
the student predicts hidden content from its context.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._device import resolve_device
from .._docs import fill_doc
from .._logging import get_logger
from .ieeg_transformer import IEEGTransformer, make_token_mask

__all__ = ["MaskedLatentPretraining", "PretrainingResult", "pretrain_masked_latent"]

logger = get_logger(__name__)

_TARGET_EPS = 1e-5  # variance floor of the batch standardization of targets (as in batch norm)


class MaskedLatentPretraining(nn.Module):
    """Student encoder, EMA teacher and predictor of masked latent reconstruction.

    Parameters
    ----------
    encoder : IEEGTransformer
        The student; trained in place.
    mask_ratio : float
        Fraction of spatiotemporal tokens hidden per sample, in (0, 1).
    ema_decay : float
        Teacher update ``teacher <- decay * teacher + (1 - decay) * student``
        after every optimizer step, in [0, 1).
    """

    def __init__(self, encoder: IEEGTransformer, *, mask_ratio: float = 0.5, ema_decay: float = 0.996) -> None:
        super().__init__()
        if not isinstance(encoder, IEEGTransformer):
            raise ValueError(f"The 'encoder' must be an IEEGTransformer. Got {type(encoder).__name__} instead.")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"The 'mask_ratio' must lie strictly between 0 and 1. Got {mask_ratio!r} instead.")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"The 'ema_decay' must lie in [0, 1). Got {ema_decay!r} instead.")
        self.mask_ratio = float(mask_ratio)
        self.ema_decay = float(ema_decay)
        self.student = encoder
        self.teacher = copy.deepcopy(encoder).requires_grad_(False).eval()
        d = encoder.d_model
        self.predictor = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))

    def train(self, mode: bool = True) -> "MaskedLatentPretraining":
        super().train(mode)
        self.teacher.eval()  # targets without dropout, in training too
        return self

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's normalized tokens, tensor of shape (n_samples, n_groups, n_patches, d_model).

        Layer norm over features, then standardization over the batch at every
        token position and feature (``x`` must hold at least 2 samples).
        """
        if len(x) < 2:
            raise ValueError(f"Masked latent targets are standardized over the batch; it needs 2 or more samples. "
                             f"Got {len(x)}.")
        with torch.no_grad():
            out = self.teacher(x).float()
            out = F.layer_norm(out, out.shape[-1:])
            return (out - out.mean(dim=0)) / (out.var(dim=0, correction=0) + _TARGET_EPS).sqrt()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the predicted latents at the masked tokens (a scalar tensor).

        Parameters
        ----------
        x : tensor of shape (n_samples, n_channels, n_times)
        mask : bool tensor of shape (n_samples, n_groups, n_patches)
            True at the tokens hidden from the student.
        """
        predicted = self.predictor(self.student(x, mask)[mask])
        return F.mse_loss(predicted.float(), self.targets(x)[mask])

    @torch.no_grad()
    def update_teacher(self) -> None:
        """Move the teacher's weights towards the student's (and copy its buffers)."""
        for teacher, student in zip(self.teacher.parameters(), self.student.parameters()):
            teacher.lerp_(student.detach(), 1.0 - self.ema_decay)
        for teacher, student in zip(self.teacher.buffers(), self.student.buffers()):
            teacher.copy_(student)


@dataclasses.dataclass(frozen=True)
class PretrainingResult:
    """Outcome of :func:`pretrain_masked_latent`.

    Attributes
    ----------
    encoder : IEEGTransformer
        The pretrained student (the object passed in, trained in place).
    train_loss : array of shape (n_epochs_run,)
        Mean masked-latent loss over each epoch's batches.
    val_loss : array of shape (n_epochs_run + 1,) or None
        Loss on the validation epochs (the same masks every time) before
        training and after each epoch, when validation epochs were given.
    samples_per_second : float
        Training throughput (mean over epochs, validation excluded).
    training : TrainingResult
        What :func:`~neurodec.neural.fit_network` returned (history, best epoch,
        checkpoint folder).
    """

    encoder: IEEGTransformer
    train_loss: np.ndarray
    val_loss: np.ndarray | None
    samples_per_second: float
    training: Any


class _MaskedLatentLoss:
    """The loss function given to fit_network: new random masks while training, fixed ones in validation.

    The teacher's EMA update runs at the start of every training step, i.e.
    right after the previous optimizer step (fit_network has no step hook);
    training masks come from torch's global generator, which fit_network
    seeds and checkpoints, so a resumed run draws the same masks.
    """

    def __init__(self, n_groups: int, n_patches: int, mask_ratio: float, val_seed: int) -> None:
        self.shape = (n_groups, n_patches)
        self.mask_ratio = mask_ratio
        self.val_seed = val_seed

    def __call__(self, task: MaskedLatentPretraining, batch: Any) -> torch.Tensor:
        x = batch[0]
        if task.training:
            task.update_teacher()
            generator = None
        else:
            generator = torch.Generator().manual_seed(self.val_seed)
        mask = make_token_mask(len(x), *self.shape, self.mask_ratio, generator=generator, device=x.device)
        return task(x, mask)


@fill_doc
def pretrain_masked_latent(
    encoder: IEEGTransformer,
    data: Any,
    *,
    val_data: Any = None,
    n_epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    mask_ratio: float = 0.5,
    ema_decay: float = 0.996,
    patience: int | None = None,
    precision: str = "auto",
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    random_state: int = 0,
    device: Any = "auto",
    verbose: bool | int = True,
) -> PretrainingResult:
    """Pretrain ``encoder`` by masked latent reconstruction on unlabelled epochs.

    Training runs on :func:`~neurodec.neural.fit_network`: seeded, checkpointed,
    resumable, early-stopped on the validation loss, mixed precision on GPU.

    Parameters
    ----------
    encoder : IEEGTransformer
        Trained in place (moved to ``device``).
    data : array of shape (n_samples, n_channels, n_times) or Responses
        Training epochs (a Responses' ``data``; labels are not used).
    val_data : array of shape (n_val, n_channels, n_times) or Responses, optional
        Held-out epochs, scored with the same masks before training and after
        every epoch; they drive early stopping.
    n_epochs, batch_size : int
        Passes over ``data`` and samples per optimizer step (2 or more: the
        targets are standardized over the batch).
    lr, weight_decay : float
        AdamW learning rate and weight decay.
    mask_ratio, ema_decay : float
        See :class:`MaskedLatentPretraining`.
    patience : int, optional
        Early stopping on the validation loss (see ``fit_network``).
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast on GPU (see ``fit_network``); float32 on the CPU.
    checkpoint_dir : path-like, optional
        Checkpoints and ``metrics.jsonl`` (the teacher is saved with the student).
    resume : bool
        Continue the run saved in ``checkpoint_dir``.
    %(random_state)s
        Here an int (a resumable run must be replayable).
    %(device)s
    %(verbose)s

    Returns
    -------
    PretrainingResult
    """
    from .training import fit_network

    x = _as_epochs(data, "data")
    x_val = None if val_data is None else _as_epochs(val_data, "val_data")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 2:
        raise ValueError(f"The 'batch_size' parameter must be an integer >= 2. Got {batch_size!r} instead.")
    if x_val is not None and len(x_val) % batch_size == 1:
        raise ValueError(
            f"'val_data' has {len(x_val)} epochs: its last batch of {batch_size} would hold 1 epoch, and the "
            "targets are standardized over the batch. Choose another batch_size or drop one epoch."
        )
    dev = resolve_device(device)
    task = MaskedLatentPretraining(encoder, mask_ratio=mask_ratio, ema_decay=ema_decay).to(dev)
    loss_fn = _MaskedLatentLoss(encoder.layout.n_groups, encoder.n_patches(x.shape[2]), mask_ratio,
                                val_seed=int(random_state) + 1)
    initial = None if x_val is None else _evaluate(task, loss_fn, x_val, batch_size, dev)
    result = fit_network(
        task, (x,), loss_fn, val_data=None if x_val is None else (x_val,), n_epochs=n_epochs,
        batch_size=batch_size, drop_last=len(x) % batch_size == 1, lr=lr, weight_decay=weight_decay,
        patience=patience, precision=precision, checkpoint_dir=checkpoint_dir, resume=resume,
        random_state=random_state, device=dev, verbose=verbose,
    )
    history = result.history
    encoder.eval()
    val_loss = None if x_val is None else np.asarray([initial] + [r["val_loss"] for r in history])
    return PretrainingResult(encoder, np.asarray([r["train_loss"] for r in history]), val_loss,
                             float(np.mean([r["samples_per_s"] for r in history])), result)


@torch.no_grad()
def _evaluate(task: MaskedLatentPretraining, loss_fn: _MaskedLatentLoss, x: torch.Tensor, batch_size: int,
              dev: torch.device) -> float:
    """Mean validation loss, batched as fit_network batches it."""
    task.eval()
    total = sum(float(loss_fn(task, (b.to(dev),))) * len(b) for b in x.split(batch_size))
    return total / len(x)


def _as_epochs(data: Any, name: str) -> torch.Tensor:
    """Epochs as a float32 CPU tensor of shape (n_samples, n_channels, n_times)."""
    array = getattr(data, "data", data)
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 3 or not array.size:
        raise ValueError(
            f"The '{name}' parameter must be epochs of shape (n_samples, n_channels, n_times). "
            f"Got shape {array.shape} instead."
        )
    if not np.isfinite(array).all():
        raise ValueError(f"The '{name}' parameter holds NaN or infinite values.")
    return torch.from_numpy(array)
