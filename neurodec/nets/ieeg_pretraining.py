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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._device import resolve_device
from .._docs import fill_doc
from .._logging import get_logger, progress
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
            return (out - out.mean(dim=0)) / (out.var(dim=0) + _TARGET_EPS).sqrt()

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
    train_loss : array of shape (n_epochs,)
        Mean masked-latent loss over each epoch's batches.
    val_loss : array of shape (n_epochs + 1,) or None
        Loss on the validation epochs (fixed masks) before training and after
        each epoch, when given.
    samples_per_second : float
        Training throughput over all epochs.
    """

    encoder: IEEGTransformer
    train_loss: np.ndarray
    val_loss: np.ndarray | None
    samples_per_second: float


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
    random_state: int | None = 0,
    device: Any = "auto",
    verbose: bool | int = True,
) -> PretrainingResult:
    """Pretrain ``encoder`` by masked latent reconstruction on unlabelled epochs.

    Parameters
    ----------
    encoder : IEEGTransformer
        Trained in place (moved to ``device``).
    data : array of shape (n_samples, n_channels, n_times) or Responses
        Training epochs (a Responses' ``data``; labels are not used).
    val_data : array of shape (n_val, n_channels, n_times) or Responses, optional
        Held-out epochs scored with fixed masks after every epoch.
    n_epochs, batch_size : int
        Passes over ``data`` and samples per optimizer step.
    lr, weight_decay : float
        AdamW learning rate and weight decay.
    mask_ratio, ema_decay : float
        See :class:`MaskedLatentPretraining`.
    %(random_state)s
    %(device)s
    %(verbose)s

    Returns
    -------
    PretrainingResult
    """
    import time

    dev = resolve_device(device)
    x = _as_epochs(data, "data")
    x_val = None if val_data is None else _as_epochs(val_data, "val_data")
    if x_val is not None and len(x_val) < 2:
        raise ValueError(f"The 'val_data' parameter needs 2 or more epochs. Got {len(x_val)}.")
    for name, value in (("n_epochs", n_epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"The '{name}' parameter must be a positive integer. Got {value!r} instead.")
    seed = int(np.random.default_rng(random_state).integers(2**31))
    torch.manual_seed(seed)  # dropout draws and predictor init follow the seed
    generator = torch.Generator().manual_seed(seed)
    task = MaskedLatentPretraining(encoder, mask_ratio=mask_ratio, ema_decay=ema_decay).to(dev)
    params = [p for p in task.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    n_groups, n_patches = encoder.layout.n_groups, encoder.n_patches(x.shape[2])
    val_masks = None
    if x_val is not None:
        val_masks = make_token_mask(len(x_val), n_groups, n_patches, mask_ratio,
                                    generator=torch.Generator().manual_seed(seed + 1))
    val_loss = [] if x_val is None else [_evaluate(task, x_val, val_masks, batch_size, dev)]
    train_loss, n_seen, elapsed = [], 0, 0.0
    for _ in progress(range(n_epochs), verbose=verbose, desc="pretraining", unit="epoch"):
        task.train()
        start = time.perf_counter()  # throughput counts training steps only, not validation
        order = torch.randperm(len(x), generator=generator)
        losses = []
        for batch in order.split(batch_size):
            if len(batch) < 2:  # a last batch of one sample has no batch statistics
                continue
            xb = x[batch].to(dev)
            mask = make_token_mask(len(batch), n_groups, n_patches, mask_ratio, generator=generator, device=dev)
            loss = task(xb, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            task.update_teacher()
            losses.append(float(loss.detach()))
            n_seen += len(batch)
        elapsed += time.perf_counter() - start
        train_loss.append(float(np.mean(losses)))
        if x_val is not None:
            val_loss.append(_evaluate(task, x_val, val_masks, batch_size, dev))
        logger.info("pretraining epoch %d: loss %.4f", len(train_loss), train_loss[-1])
    encoder.eval()
    return PretrainingResult(encoder, np.asarray(train_loss), np.asarray(val_loss) if x_val is not None else None,
                             n_seen / elapsed)


@torch.no_grad()
def _evaluate(task: MaskedLatentPretraining, x: torch.Tensor, masks: torch.Tensor, batch_size: int,
              dev: torch.device) -> float:
    task.eval()
    # Batches of at least batch_size samples (the targets need batch statistics).
    parts = np.array_split(np.arange(len(x)), max(1, len(x) // batch_size))
    total = sum(float(task(x[torch.as_tensor(p)].to(dev), masks[torch.as_tensor(p)].to(dev))) * len(p) for p in parts)
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
