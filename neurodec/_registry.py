"""A small named registry, one per kind of thing (datasets, backbones, solvers).

Entries are registered next to their definition with a decorator and looked up
by name; unknown names raise ``ValueError`` listing close matches. Registering
never imports heavy libraries: an entry is a spec plus a callable.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry mapping with helpful lookup errors.

    Parameters
    ----------
    kind : str
        What the registry holds, used in error messages ("backbone", "dataset").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, *, overwrite: bool = False) -> T:
        """Register ``entry`` under ``name``; refuse silent overwrites."""
        if not overwrite and name in self._entries:
            raise ValueError(f"A {self.kind} named {name!r} is already registered.")
        self._entries[name] = entry
        return entry

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorator(entry: T) -> T:
            return self.add(name, entry, overwrite=overwrite)

        return decorator

    def get(self, name: str) -> T:
        """Return the entry called ``name``.

        Raises
        ------
        ValueError
            If no entry has that name; the message lists close matches.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(self._unknown_message(name)) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style ``pattern`` (case-insensitive)."""
        pattern = pattern.lower()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n.lower(), pattern))

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), list(self._entries), n=5, cutoff=0.5)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        return (
            f"Unknown {self.kind} {name!r}.{hint} "
            f"There are {len(self._entries)} registered; list them with the registry's list function."
        )

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
