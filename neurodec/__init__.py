"""neurodec: brain encoding and decoding research in Python.

Subpackages are imported on first attribute access so that ``import neurodec``
stays light (no torch, nibabel, timm or mne at import time)::

    import neurodec
    responses = neurodec.data.load_nsd(root, subject=1, roi="nsdgeneral")
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

__version__ = "0.1.0.dev0"

_SUBPACKAGES = ("backbones", "data", "decoding", "discovery", "encoding", "metrics", "neural", "pipelines", "ridge", "viz")

__all__ = ["__version__", *_SUBPACKAGES]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'neurodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
