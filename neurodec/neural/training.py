"""Training a lab can trust: seeded, checkpointed, resumable, early-stopped.

:func:`fit_network` trains a torch module with a loss given by the caller.
What makes a run trustworthy:

- Seeds: python, numpy and torch are seeded from ``random_state``; the data
  order of epoch ``e`` is a permutation drawn from a generator seeded by
  ``(random_state, e)`` alone, so it does not depend on what ran before.
- Checkpoints: after every epoch ``last.pt`` (model, optimizer, scheduler,
  grad scaler, epoch, history, best score, RNG states) is written to a
  temporary file and renamed into place, so a killed run never leaves a torn
  checkpoint; ``best.pt`` holds the weights of the best validation epoch.
- Resume: ``resume=True`` restores all of it, RNG states included, so an
  interrupted and resumed run equals the uninterrupted one (bitwise on CPU).
- Early stopping: on the validation loss (or a caller's score), with
  ``patience`` epochs; the best weights are restored at the end.
- Mixed precision on GPU (bf16 autocast, or fp16 with a gradient scaler);
  float32 on CPU.
- Metrics: one JSON line per epoch in ``metrics.jsonl`` (rewritten
  atomically, so it always matches the checkpoint).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._device import resolve_device
from .._docs import fill_doc
from .._io import atomic_path, write_text_atomic
from .._logging import get_logger
from ._loop import as_dataset, run_epoch

if TYPE_CHECKING:
    import torch

__all__ = ["TrainingResult", "fit_network", "resolve_precision", "seed_everything"]

logger = get_logger(__name__)

LAST, BEST, METRICS = "last.pt", "best.pt", "metrics.jsonl"
#: Settings that fix the sequence of batches; a resumed run must keep them.
_RUN_KEYS = ("random_state", "batch_size", "drop_last", "n_train")


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """What :func:`fit_network` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (best validation weights when a validation split
        was given), on the training device.
    history : list of dict
        One record per epoch: ``epoch``, ``train_loss`` (and the mean of any
        other values the loss function returned, prefixed ``train_``),
        ``val_loss``/``score`` with a validation split, ``lr``, ``seconds``,
        ``samples_per_s``.
    best_epoch : int
        Epoch (0-based) of the best validation score; the last epoch without
        a validation split.
    best_score : float or None
        The best validation score, None without a validation split.
    stopped_early : bool
        Whether early stopping ended the run before ``n_epochs``.
    checkpoint_dir : pathlib.Path or None
        Folder of ``last.pt``, ``best.pt`` and ``metrics.jsonl``.
    """

    model: Any
    history: list[dict[str, float]]
    best_epoch: int
    best_score: float | None
    stopped_early: bool
    checkpoint_dir: Path | None


def seed_everything(seed: int) -> int:
    """Seed python's ``random``, numpy's global generator and torch (all devices).

    Call it before building a model so that its initialization is reproducible.

    Parameters
    ----------
    seed : int
        Non-negative seed.

    Returns
    -------
    int
        The seed.
    """
    import torch

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"The 'seed' parameter must be a non-negative integer. Got {seed!r} instead.")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    return int(seed)


def resolve_precision(precision: str, device: "torch.device") -> "torch.dtype | None":
    """The autocast dtype that ``precision`` names on ``device`` (None: float32, no autocast).

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16"}
        "auto" is bf16 on a CUDA device that supports it, fp16 on an older
        CUDA device, fp32 on the CPU (CPU autocast is slow and lossy, no gain).
    device : torch.device
    """
    import torch

    options = {"auto", "fp32", "bf16", "fp16"}
    if precision not in options:
        raise ValueError(f"The 'precision' parameter must be one of {sorted(options)}. Got {precision!r} instead.")
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("The 'precision' parameter 'fp16' needs a CUDA device (use 'bf16' or 'fp32' on the CPU).")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _epoch_order(seed: int, epoch: int, n: int) -> list[int]:
    """The data order of one epoch: depends on (seed, epoch) only, so a resumed run sees the same batches."""
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def _rng_state() -> dict[str, Any]:
    import torch

    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(obj: Any, path: Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _cpu_state(model: "torch.nn.Module") -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@fill_doc
def fit_network(
    model: "torch.nn.Module",
    train_data: Any,
    loss_fn: Callable[["torch.nn.Module", Any], Any],
    *,
    val_data: Any = None,
    score_fn: Callable[["torch.nn.Module"], float] | None = None,
    maximize: bool = False,
    n_epochs: int = 10,
    batch_size: int = 32,
    drop_last: bool = False,
    optimizer: Callable[[Any], "torch.optim.Optimizer"] | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    scheduler: Callable[["torch.optim.Optimizer"], Any] | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    grad_clip: float | None = None,
    precision: str = "auto",
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    random_state: int = 0,
    num_workers: int = 0,
    device: Any = "auto",
    verbose: bool | int = False,
) -> TrainingResult:
    """Train ``model`` on ``train_data`` with a caller-given loss; seeded, checkpointed, resumable.

    Parameters
    ----------
    model : torch.nn.Module
        Built before the call; call :func:`seed_everything` first for a
        reproducible initialization. Moved to the device.
    train_data : torch Dataset, array or tuple of arrays of n_train samples
        Arrays become a ``TensorDataset`` (float64 -> float32).
    loss_fn : callable (model, batch) -> tensor or mapping
        Returns the scalar loss of a batch (the DataLoader's batch, moved to
        the device), or a mapping with ``"loss"`` and other scalars to log.
    val_data : same as ``train_data``, optional
        Validation split: its mean loss (or ``score_fn``) drives early
        stopping and the choice of the best weights.
    score_fn : callable (model) -> float, optional
        Validation score used instead of the validation loss (e.g. retrieval
        accuracy); called in eval mode without gradients.
    maximize : bool
        Whether a larger ``score_fn`` is better (the loss is minimized).
    n_epochs : int
        Total epochs; a resumed run continues up to it (it may be raised).
    batch_size : int
    drop_last : bool
        Drop the last incomplete training batch (contrastive losses need full batches).
    optimizer : callable (parameters) -> torch.optim.Optimizer, optional
        Default ``AdamW(lr=lr, weight_decay=weight_decay)``.
    lr, weight_decay : float
        Of the default optimizer.
    scheduler : callable (optimizer) -> LR scheduler, optional
        Stepped once per epoch.
    patience : int, optional
        Stop after this many epochs without improvement of the validation
        score by more than ``min_delta``; None trains all epochs.
    min_delta : float
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast dtype (see :func:`resolve_precision`); fp16 uses a gradient scaler.
    checkpoint_dir : path-like, optional
        Where ``last.pt``, ``best.pt`` and ``metrics.jsonl`` go. A folder that
        already holds a checkpoint is refused unless ``resume=True``.
    resume : bool
        Continue the run saved in ``checkpoint_dir`` (starts fresh if none).
    %(random_state)s
        Here an int (the run must be replayable to be resumed).
    num_workers : int
        DataLoader workers.
    %(device)s
    %(verbose)s

    Returns
    -------
    TrainingResult

    Examples
    --------
    >>> import torch
    >>> from neurodec.neural import fit_network, seed_everything
    >>> seed_everything(0)
    0
    >>> X, y = torch.randn(64, 3), torch.randn(64, 1)
    >>> mse = lambda model, batch: torch.nn.functional.mse_loss(model(batch[0]), batch[1])
    >>> result = fit_network(torch.nn.Linear(3, 1), (X, y), mse, n_epochs=2, device="cpu")
    >>> len(result.history)
    2
    """
    import torch
    from torch.utils.data import DataLoader

    for name, value, minimum in (("n_epochs", n_epochs, 1), ("batch_size", batch_size, 1),
                                 ("random_state", random_state, 0), ("num_workers", num_workers, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"The {name!r} parameter of fit_network must be an integer >= {minimum}. Got {value!r}.")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise ValueError(f"The 'patience' parameter of fit_network must be None or an integer >= 1. Got {patience!r}.")
    if score_fn is not None and val_data is None:
        raise ValueError("The 'score_fn' parameter of fit_network needs a validation split ('val_data').")
    if resume and checkpoint_dir is None:
        raise ValueError("The 'resume' parameter of fit_network needs a 'checkpoint_dir'.")
    dev = resolve_device(device)
    autocast = resolve_precision(precision, dev)
    train_set = as_dataset(train_data, "train_data")
    val_set = None if val_data is None else as_dataset(val_data, "val_data")
    run = {"random_state": int(random_state), "batch_size": int(batch_size), "drop_last": bool(drop_last),
           "n_train": len(train_set)}

    seed_everything(int(random_state))
    model.to(dev)
    optim = (optimizer or (lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=weight_decay)))(model.parameters())
    sched = scheduler(optim) if scheduler is not None else None
    scaler = torch.amp.GradScaler(dev.type, enabled=autocast == torch.float16)

    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    start, history, best_score, best_epoch, bad_epochs, stopped = 0, [], None, -1, 0, False
    best_state = None
    if folder is not None and (folder / LAST).exists():
        if not resume:
            raise ValueError(f"The 'checkpoint_dir' {folder} already holds a checkpoint ({LAST}): pass resume=True "
                             "to continue that run, or choose an empty folder.")
        # Our own file, written by _save below: it holds numpy RNG state, hence weights_only=False.
        ckpt = torch.load(folder / LAST, map_location="cpu", weights_only=False)
        changed = {k: (ckpt["run"][k], run[k]) for k in _RUN_KEYS if ckpt["run"][k] != run[k]}
        if changed:
            raise ValueError(f"Cannot resume the run in {folder}: its settings differ (saved, given): {changed}.")
        model.load_state_dict(ckpt["model"])
        optim.load_state_dict(ckpt["optimizer"])
        if sched is not None and ckpt["scheduler"] is not None:
            sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start, history = ckpt["epoch"], ckpt["history"]
        best_score, best_epoch, bad_epochs, stopped = ckpt["best_score"], ckpt["best_epoch"], ckpt["bad_epochs"], ckpt["stopped"]
        if (folder / BEST).exists():
            best_state = torch.load(folder / BEST, map_location="cpu", weights_only=True)
        _set_rng_state(ckpt["rng"])
        logger.info("Resuming %s at epoch %d of %d.", folder, start, n_epochs)

    loader_kw = {"batch_size": int(batch_size), "num_workers": int(num_workers), "pin_memory": dev.type == "cuda"}
    val_loader = None if val_set is None else DataLoader(val_set, shuffle=False, **loader_kw)
    for epoch in range(start, int(n_epochs)):
        if stopped:
            break
        tic = time.perf_counter()
        order = _epoch_order(int(random_state), epoch, len(train_set))
        loader = DataLoader(train_set, sampler=order, drop_last=drop_last, **loader_kw)
        train, n_seen = run_epoch(model, loader, loss_fn, optimizer=optim, scaler=scaler, autocast=autocast,
                                   device=dev, grad_clip=grad_clip, train=True, desc=f"epoch {epoch}", verbose=verbose)
        record = {"epoch": epoch, **{f"train_{k}": v for k, v in train.items()}, "lr": optim.param_groups[0]["lr"]}
        if sched is not None:
            sched.step()
        if val_loader is not None:
            val, _ = run_epoch(model, val_loader, loss_fn, optimizer=None, scaler=None, autocast=autocast,
                                device=dev, grad_clip=None, train=False, desc=f"validation {epoch}", verbose=verbose)
            record.update({f"val_{k}": v for k, v in val.items()})
            if score_fn is not None:
                model.eval()
                with torch.no_grad():
                    record["score"] = float(score_fn(model))
            else:
                record["score"] = val["loss"]
            score = record["score"]
            better = best_score is None or (score > best_score + min_delta if maximize else score < best_score - min_delta)
            if better:
                best_score, best_epoch, bad_epochs = score, epoch, 0
                best_state = _cpu_state(model)
                if folder is not None:
                    _save(best_state, folder / BEST)
            else:
                bad_epochs += 1
                stopped = patience is not None and bad_epochs >= patience
        else:
            best_epoch = epoch
        seconds = time.perf_counter() - tic
        record.update({"seconds": seconds, "samples_per_s": n_seen / seconds if seconds > 0 else math.inf})
        history.append(record)
        if folder is not None:
            _save({"model": model.state_dict(), "optimizer": optim.state_dict(),
                   "scheduler": None if sched is None else sched.state_dict(), "scaler": scaler.state_dict(),
                   "epoch": epoch + 1, "history": history, "best_score": best_score, "best_epoch": best_epoch,
                   "bad_epochs": bad_epochs, "stopped": stopped, "rng": _rng_state(), "run": run}, folder / LAST)
            write_text_atomic(folder / METRICS, "".join(json.dumps(r) + "\n" for r in history))
        if verbose:
            logger.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"))
    if best_state is not None:
        # Restore the best validation weights (early stopping's point); the last ones stay in last.pt.
        model.load_state_dict({k: v.to(dev) for k, v in best_state.items()})
    return TrainingResult(model=model, history=copy.deepcopy(history), best_epoch=best_epoch,
                          best_score=best_score, stopped_early=bool(stopped) and len(history) < n_epochs,
                          checkpoint_dir=folder)
