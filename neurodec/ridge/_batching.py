"""Target batching: batch size from a memory budget, streaming, OOM back-off.

Targets (voxels) are independent given the features, so every solver runs
over column blocks of ``Y``. A block is read from wherever ``Y`` lives (a
torch tensor, a numpy array or memmap, an HDF5 or zarr dataset: anything with
``shape`` and ``Y[:, a:b]`` slicing), moved to the compute device, processed,
and its results are written back to host memory. When the device runs out of
memory, the block size is halved and the block retried.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._logging import get_logger

__all__ = ["choose_n_targets_batch", "is_out_of_memory", "load_targets", "run_target_batches"]

logger = get_logger(__name__)

# Fraction of free device memory (or available RAM) one target batch may use;
# the rest stays for the allocator's fragmentation and for other processes.
_MEMORY_FRACTION = 0.5
_CPU_BUDGET_CAP = 2 * 2**30


def load_targets(Y: Any, start: int, stop: int, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Return columns ``start:stop`` of ``Y`` as a tensor on ``device``.

    Parameters
    ----------
    Y : tensor, array, memmap, h5py.Dataset or zarr.Array of shape (n_samples, n_targets)
        Only ``Y[:, start:stop]`` is read, so ``Y`` may be larger than memory.
    start, stop : int
        The column range.
    device : torch.device
    dtype : torch.dtype
        Floating dtype of the result (float16 input is upcast here).
    """
    if isinstance(Y, torch.Tensor):
        block = Y[:, start:stop]
    else:
        block = torch.from_numpy(np.require(Y[:, start:stop], requirements=["C", "W"]))
    return block.to(device=device, dtype=dtype)


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * _MEMORY_FRACTION)
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # non-POSIX systems
        avail = _CPU_BUDGET_CAP
    return int(min(avail * _MEMORY_FRACTION, _CPU_BUDGET_CAP))


def choose_n_targets_batch(n_targets: int, bytes_per_target: int, *, device: torch.device) -> int:
    """Largest batch of targets whose working memory fits the device budget.

    Parameters
    ----------
    n_targets : int
    bytes_per_target : int
        Working memory one target needs during a batch (all temporaries).
    device : torch.device
        On CUDA the budget is half the free memory (``torch.cuda.mem_get_info``);
        on CPU half the available RAM, capped at 2 GiB.
    """
    budget = _available_bytes(device)
    return int(max(1, min(n_targets, budget // max(1, bytes_per_target))))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CUDA or CPU)."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    message = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


def run_target_batches(
    n_targets: int,
    n_targets_batch: int,
    process: Callable[[int, int], None],
    *,
    device: torch.device,
    batch_hook: Callable[[int], None] | None = None,
    verbose: bool | int = False,
) -> int:
    """Call ``process(start, stop)`` over consecutive target blocks.

    An out-of-memory error inside a block halves the block size and retries
    the same block; the smaller size is kept for the remaining blocks.

    Parameters
    ----------
    n_targets : int
    n_targets_batch : int
        Initial block size.
    process : callable
        Does the work for targets ``start:stop`` and stores its results.
    device : torch.device
        Its cache is emptied after an out-of-memory error.
    batch_hook : callable, optional
        Called with the block size before each attempt; it may raise (e.g. a
        simulated ``torch.cuda.OutOfMemoryError`` in tests).
    verbose : bool or int
        Show a progress bar over targets.

    Returns
    -------
    n_targets_batch : int
        The block size in use at the end (smaller than asked after back-offs).
    """
    from tqdm.auto import tqdm

    size = max(1, int(n_targets_batch))
    start = 0
    with tqdm(total=n_targets, desc="ridge targets", unit="target", disable=not verbose, leave=False) as bar:
        while start < n_targets:
            stop = min(start + size, n_targets)
            try:
                if batch_hook is not None:
                    batch_hook(stop - start)
                process(start, stop)
            except (RuntimeError, MemoryError) as exc:
                if not is_out_of_memory(exc) or size == 1:
                    raise
                size = max(1, size // 2)
                logger.info("Out of memory with %d targets per batch; retrying with %d.", stop - start, size)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            bar.update(stop - start)
            start = stop
    return size
