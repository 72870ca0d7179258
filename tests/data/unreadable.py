"""Make one file unreadable to the loaders: the tests run as root, where chmod cannot deny a read."""

import os

from neurodec.data import _checks


def deny_read(monkeypatch, denied):
    """Opening ``denied`` through the loaders' checked open raises PermissionError; other files open as usual."""
    real_open = open

    def fake_open(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(denied):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(_checks, "open", fake_open, raising=False)
