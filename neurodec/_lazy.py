"""Lazy package exports: public names imported from their submodule on first access.

Keeps ``import neurodec.<subpackage>`` light (no torch, scikit-learn, nibabel
until a name that needs them is used)::

    __all__, __getattr__, __dir__ = lazy_exports(__name__, {"RidgeCV": "estimators"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], *, eager: Iterable[str] = ()
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """Build a package's ``__all__``, ``__getattr__`` and ``__dir__``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping of str -> str
        Public name -> submodule of ``package`` that defines it.
    eager : iterable of str
        Public names the package defines or imports itself (listed in ``__all__`` too).
    """
    exports = dict(exports)
    names = sorted({*exports, *eager})

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return names

    return names, __getattr__, __dir__
