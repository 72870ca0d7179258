"""Device selection shared by every torch-backed computation.

``device="auto"`` picks CUDA when available, else CPU; an explicit string or
``torch.device`` is honoured as given. torch is imported on call, not at
``import neurodec`` time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device"]


def resolve_device(device: Any = "auto") -> "torch.device":
    """Return the ``torch.device`` that ``device`` names.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        "auto" selects the first CUDA device when one is available, else CPU.

    Raises
    ------
    ValueError
        If a CUDA device is requested but none is available, or the name is
        not a device.
    """
    import torch

    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"The 'device' parameter asks for {device!r}, but no CUDA device is available.")
    return dev
