"""Parameters shared by many functions, documented once (nilearn's docdict idea).

A public function or class whose docstring holds ``%(device)s`` and the like
is decorated with :func:`fill_doc`, which fills in the entries below. Only parameters that mean the same thing everywhere belong
here; keep this file small.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["docdict", "fill_doc"]

T = TypeVar("T", bound=Callable)

docdict: dict[str, str] = {
    "device": """device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        Where the computation runs. "auto" picks the device of a tensor input,
        else CUDA when available, else the CPU; results agree within float
        tolerance on every device.""",
    "verbose": """verbose : bool or int
        Progress bars and info messages; falsy runs silently.""",
    "random_state": """random_state : int, numpy.random.Generator or None
        Seed of everything random in the call (the one seeding name across
        neurodec); None draws fresh entropy.""",
    "n_targets_batch": """n_targets_batch : int, optional
        Targets (units) per batch: bounds memory. By default the largest batch
        that fits half the free GPU memory, or a RAM budget on the CPU.""",
}


def fill_doc(obj: T) -> T:
    """Fill the ``%(name)s`` fields of ``obj.__doc__`` with :data:`docdict` entries."""
    if obj.__doc__:
        try:
            obj.__doc__ = obj.__doc__ % docdict
        except (KeyError, ValueError) as exc:  # an unknown name or a stray "%": a bug in the docstring
            raise RuntimeError(f"fill_doc: cannot fill the docstring of {obj.__qualname__}: {exc!r}") from exc
    return obj
