"""Benchmark data: train/test target matrices written column block by column block to .npy files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["write_split_targets"]


def write_split_targets(
    folder: Path, n_train: int, n_test: int, n_targets: int, block: Callable[[slice], np.ndarray], block_size: int
) -> None:
    """Write ``Y_train.npy`` (n_train, n_targets) and ``Y_test.npy`` (n_test, n_targets), float32.

    ``block(cols)`` returns the ``(n_train + n_test, len(cols))`` values of
    those target columns; blocks are written in column order through
    memory maps, so targets larger than memory can be made. Both files
    appear only when complete (written as ``.tmp``, then renamed).
    """
    from numpy.lib.format import open_memmap

    parts = {"Y_train": (0, n_train), "Y_test": (n_train, n_train + n_test)}
    maps = {name: open_memmap(folder / f"{name}.npy.tmp", mode="w+", dtype=np.float32,
                              shape=(stop - start, n_targets)) for name, (start, stop) in parts.items()}
    for start in range(0, n_targets, block_size):
        cols = slice(start, min(n_targets, start + block_size))
        values = block(cols)
        for name, (first, stop) in parts.items():
            maps[name][:, cols] = values[first:stop]
    for array in maps.values():
        array.flush()
    del maps, array
    for name in parts:
        os.replace(folder / f"{name}.npy.tmp", folder / f"{name}.npy")
