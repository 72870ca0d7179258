"""Logging and progress bars shared by every long-running function.

Functions take ``verbose`` (bool or int): falsy silences progress bars and
info messages; truthy shows them. Messages go through the ``neurodec`` logger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["get_logger", "progress"]

T = TypeVar("T")


def get_logger(name: str) -> logging.Logger:
    """Return the logger of a neurodec module (a child of ``neurodec``)."""
    return logging.getLogger(name if name.startswith("neurodec") else f"neurodec.{name}")


def progress(
    iterable: Iterable[T],
    *,
    verbose: bool | int = True,
    desc: str | None = None,
    total: int | None = None,
    unit: str = "it",
) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm progress bar when ``verbose`` is truthy."""
    if not verbose:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, unit=unit, leave=False)
