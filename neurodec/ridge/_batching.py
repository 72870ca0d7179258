"""Target batching: batch size from a memory budget, streaming, OOM back-off.

Targets (voxels) are independent given the features, so every solver runs
over column blocks of ``Y``. A block is read from wherever ``Y`` lives (a
torch tensor, a numpy array or memmap, an HDF5 or zarr dataset: anything with
``shape`` and ``Y[:, a:b]`` slicing), moved to the compute device, processed,
and its results are gathered where the caller wants them. When the device
runs out of memory, the block size is halved and the block retried.

On CUDA, host targets (tensors, arrays, memmaps, HDF5, zarr) are staged by
:class:`TargetStager`: the next block is read into pinned memory and copied
to the device on a side stream while the current block computes (double
buffering); results go back to the host with :func:`to_host` (one pinned,
non-blocking copy). On CPU the same stager reads the next block eagerly,
without streams.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._logging import get_logger
from ._host_blas import blas_threads

__all__ = [
    "TargetStager",
    "choose_n_targets_batch",
    "is_out_of_memory",
    "load_targets",
    "run_target_batches",
    "to_host",
    "total_bytes",
]

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


def _read_block(Y: Any, start: int, stop: int, *, dtype: torch.dtype, pin: bool) -> torch.Tensor:
    """Columns ``start:stop`` of host targets as one contiguous (pinned when ``pin``) tensor of ``dtype``."""
    shape = (int(Y.shape[0]), stop - start)
    if isinstance(Y, torch.Tensor):
        out = torch.empty(shape, dtype=dtype, pin_memory=pin)
        return out.copy_(Y[:, start:stop])
    block = Y[:, start:stop]  # a view for arrays and memmaps, a fresh read for HDF5/zarr
    out = torch.empty(shape, dtype=dtype, pin_memory=pin)
    np.copyto(out.numpy(), np.asarray(block), casting="same_kind")  # one pass: read, cast, into the buffer
    return out


class TargetStager:
    """Target blocks on the compute device, the next one staged while the current one computes.

    ``get(start, stop)`` returns ``Y[:, start:stop]`` on ``device``;
    ``stage_next(start, stop)``, called once the work on that block is queued,
    starts staging ``Y[:, stop:stop + (stop - start)]``. A block asked for with
    other bounds than the staged one (after an out-of-memory back-off) is read
    directly and the staged one dropped.

    Parameters
    ----------
    Y : tensor, array, memmap, h5py.Dataset or zarr.Array of shape (n_samples, n_targets)
    device : torch.device
        Compute device. On CUDA, host targets go through pinned memory and a
        side stream (non-blocking copies); targets already on the device are
        sliced in place.
    dtype : torch.dtype
        Floating dtype of the blocks.
    prefetch : bool
        Stage the next block ahead (on CPU: read it eagerly).
    """

    def __init__(self, Y: Any, *, device: torch.device, dtype: torch.dtype, prefetch: bool = True) -> None:
        if device.type == "cuda" and device.index is None:  # "cuda" and "cuda:0" must compare equal below
            device = torch.device("cuda", torch.cuda.current_device())
        self.Y, self.device, self.dtype = Y, device, dtype
        self.n_targets = int(Y.shape[1])
        on_device = isinstance(Y, torch.Tensor) and Y.device == device
        self.cuda_staging = device.type == "cuda" and not on_device
        self.prefetch = prefetch and not on_device
        self._stream = torch.cuda.Stream(device) if self.cuda_staging else None
        self._staged: tuple[int, int, torch.Tensor, Any] | None = None
        self.n_staged_hits = 0  # blocks served from the staging buffer (for tests and logs)

    def _stage(self, start: int, stop: int) -> tuple[torch.Tensor, Any]:
        if isinstance(self.Y, torch.Tensor) and self.Y.device.type != "cpu":
            return self.Y[:, start:stop].to(device=self.device, dtype=self.dtype), None
        host = _read_block(self.Y, start, stop, dtype=self.dtype, pin=self.cuda_staging)
        if not self.cuda_staging:
            return host.to(self.device), None
        with torch.cuda.stream(self._stream):
            block = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        return block, event

    def get(self, start: int, stop: int) -> torch.Tensor:
        """``Y[:, start:stop]`` on the device: the staged block when its bounds match, else read now."""
        if not self.prefetch:
            return load_targets(self.Y, start, stop, device=self.device, dtype=self.dtype)
        if self._staged is not None and self._staged[:2] == (start, stop):
            block, event = self._staged[2], self._staged[3]
            self.n_staged_hits += 1
        else:
            block, event = self._stage(start, stop)
        self._staged = None
        if event is not None:
            # The compute stream waits for the copy; the allocator must not reuse the block early.
            torch.cuda.current_stream(self.device).wait_event(event)
            block.record_stream(torch.cuda.current_stream(self.device))
        return block

    def stage_next(self, start: int, stop: int) -> None:
        """Stage the block after ``start:stop`` (same width).

        Call it once the work on ``start:stop`` is queued: on CUDA the host
        read of the next block then overlaps the device's work on this one.
        """
        if self.prefetch and stop < self.n_targets:
            nxt = min(self.n_targets, stop + (stop - start))
            self._staged = (stop, nxt, *self._stage(stop, nxt))


def to_host(t: torch.Tensor) -> torch.Tensor:
    """A CPU copy of ``t``: for CUDA tensors one non-blocking copy into pinned memory, then a sync."""
    if t.device.type != "cuda":
        return t.cpu()
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    torch.cuda.current_stream(t.device).synchronize()
    return out


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * _MEMORY_FRACTION)
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # non-POSIX systems
        avail = _CPU_BUDGET_CAP
    return int(min(avail * _MEMORY_FRACTION, _CPU_BUDGET_CAP))


def total_bytes(device: torch.device) -> int:
    """Memory of ``device``: the CUDA device's total memory, or the machine's physical RAM."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # non-POSIX systems
        return 4 * _CPU_BUDGET_CAP


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
        Its cache is emptied after an out-of-memory error. On CPU numpy's BLAS
        (used by the large CPU loops, see :mod:`neurodec.ridge._host_blas`)
        gets torch's thread count.
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
    with (
        blas_threads(device),
        tqdm(total=n_targets, desc="ridge targets", unit="target", disable=not verbose, leave=False) as bar,
    ):
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
