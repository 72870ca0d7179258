"""Local checkpoints: read a state dict, strip training wrappers, load it strictly.

Released checkpoints come in many wrappers (``{"state_dict": ...}``,
``{"model": ...}``, EMA copies, DistributedDataParallel's ``module.`` prefix);
they are unwrapped here, for every source, before a spec's
``checkpoint_filter`` maps them onto the model (only a renaming such as
MOAT's TensorFlow conversion needs one), and loading is strict: any missing
key, unexpected key or shape mismatch is an error that lists them, and that
suggests ``strip_prefix=`` when the checkpoint's keys sit under a prefix
(a whole model saved around the backbone, e.g. ``features.``).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "apply_checkpoint",
    "file_sha256",
    "import_object",
    "read_checkpoint",
    "strip_key_prefix",
    "unwrap_state_dict",
]

logger = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".npz")
# Tried in this order. The trained weights come before their EMA copies: timm's train.py
# saves "state_dict" (+ "state_dict_ema"), DeiT/ConvNeXt/Swin-style scripts "model"
# (+ "model_ema"), and the authors' loaders of neurodec's own architectures (HorNet,
# RepMLPNet, LSNet, TransXNet, OverLoCK) read "model"/"state_dict" before any EMA copy;
# a file holding only an EMA copy still loads it.
_WRAPPER_KEYS = (
    "state_dict", "model", "model_state_dict", "module", "net", "state_dict_ema", "model_ema", "ema",
)  # fmt: skip
_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
_N_LISTED = 10


def import_object(path: str, *, what: str) -> Any:
    """Import ``"package.module:attribute"``; errors name ``what`` it was for."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{what} must look like 'package.module:function'. Got {path!r}.")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"{what} {path!r}: module {module_name!r} has no attribute {attribute!r}.") from None


def file_sha256(path: str | os.PathLike, *, chunk_size: int = 1 << 24) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (checkpoints can be GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint file (.safetensors, .npz of arrays, or a torch pickle .pth/.pt/.bin/.ckpt) onto the CPU.

    Torch pickles are read with ``weights_only=True``: tensors and plain
    containers only, never arbitrary code. An .npz (e.g. TensorFlow variables
    dumped with numpy) becomes a dict of tensors under the same names.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file {path} does not exist.")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise ValueError(f"Checkpoint file {path} must end with one of {CHECKPOINT_SUFFIXES}. Got {path.suffix!r}.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if path.suffix == ".npz":
        import numpy as np

        with np.load(path, allow_pickle=False) as arrays:
            return {name: torch.from_numpy(arrays[name]) for name in arrays.files}
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(
            f"Checkpoint file {path} could not be read as tensors only (torch.load weights_only=True): {exc}. "
            "Re-save its state dict alone (torch.save(ckpt['state_dict'], path)) or as .safetensors."
        ) from exc


def unwrap_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, "torch.Tensor"]:
    """The state dict inside ``checkpoint``: descend wrapper keys, strip ``module.`` prefixes."""
    import torch

    state = checkpoint
    while not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in _WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            raise ValueError(
                f"Checkpoint holds no tensors at its top level nor under any of {_WRAPPER_KEYS}; "
                f"its keys are {list(state)[:_N_LISTED]}."
            )
        state = inner
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _listing(keys: list[str]) -> str:
    more = f" (+{len(keys) - _N_LISTED} more)" if len(keys) > _N_LISTED else ""
    return ", ".join(keys[:_N_LISTED]) + more


def strip_key_prefix(state: Mapping[str, Any], prefix: str, *, source: str = "checkpoint") -> dict[str, Any]:
    """The entries of ``state`` under ``prefix``, with the prefix removed; the others are dropped (logged).

    Raises
    ------
    ValueError
        If no key starts with ``prefix``; the message lists the keys' first components.
    """
    kept = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not kept:
        heads = sorted({k.split(".")[0] + "." for k in state})
        raise ValueError(
            f"strip_prefix={prefix!r} matches no key of {source}; its keys start with {_listing(heads)}."
        )
    dropped = [k for k in state if not k.startswith(prefix)]
    if dropped:
        logger.info(
            "strip_prefix=%r: loading the %d key(s) under it from %s; ignoring %d other key(s): %s",
            prefix, len(kept), source, len(dropped), _listing(dropped),
        )
    return kept


def _prefix_hint(state: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """Suggest the ``strip_prefix`` under which the most model keys match, if stripping helps."""
    expected_keys = set(expected)
    matched = len(set(state) & expected_keys)
    candidates = set()
    for key in state:
        parts = key.split(".")
        candidates.update(".".join(parts[:depth]) + "." for depth in range(1, min(len(parts), 4)))
    best: tuple[int, int, str] | None = None  # (model keys matched, -len(prefix), prefix)
    for prefix in candidates:
        n = len({k[len(prefix):] for k in state if k.startswith(prefix)} & expected_keys)
        if n > matched and (best is None or (n, -len(prefix)) > best[:2]):
            best = (n, -len(prefix), prefix)
    if best is None:
        return ""
    n, _, prefix = best
    sharing = sum(k.startswith(prefix) for k in state)
    share = f"All {sharing}" if sharing == len(state) else f"{sharing} of {len(state)}"
    others = "" if sharing == len(state) else f" (the {len(state) - sharing} other key(s) are ignored)"
    return (
        f" {share} checkpoint keys start with {prefix!r}; without it {n} of {len(expected_keys)} model keys match. "
        f"Load the keys under it with load(..., strip_prefix={prefix!r}){others}."
    )


def apply_checkpoint(
    model: "torch.nn.Module",
    checkpoint: Mapping[str, Any],
    *,
    checkpoint_filter: str | Callable[..., Any] | None = None,
    strip_prefix: str | None = None,
    source: str = "checkpoint",
) -> None:
    """Load ``checkpoint`` into ``model`` strictly.

    Parameters
    ----------
    model : torch.nn.Module
        The model to fill.
    checkpoint : mapping
        A state dict, possibly wrapped (see :func:`unwrap_state_dict`).
    checkpoint_filter : str or callable, optional
        ``f(state_dict, model) -> state_dict`` (or its ``"module:function"``
        path) mapping a released checkpoint onto the model's parameter names;
        skipped when the state dict already has exactly the model's names.
    strip_prefix : str, optional
        Load only the keys starting with this prefix, with it removed (see
        :func:`strip_key_prefix`); applied after unwrapping, before the filter.
    source : str
        Where the checkpoint came from, for error messages.

    Raises
    ------
    ValueError
        Listing (the first 10 of) missing keys, unexpected keys and shape
        mismatches, with a ``strip_prefix=`` suggestion where one would help.
    """
    state = unwrap_state_dict(checkpoint)
    if strip_prefix:
        state = strip_key_prefix(state, strip_prefix, source=source)
    expected = model.state_dict()
    # The filter maps released checkpoints; one saved from this very model
    # (same parameter names) loads as it is.
    if checkpoint_filter is not None and set(state) != set(expected):
        if isinstance(checkpoint_filter, str):
            checkpoint_filter = import_object(checkpoint_filter, what="checkpoint_filter")
        state = checkpoint_filter(state, model)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_listing(mismatched)}")
    if problems:
        hint = _prefix_hint(state, expected)
        if not hint and not set(state) & set(expected):
            # No shared name at all: a checkpoint of another architecture, not a version mismatch.
            hint = " No name is shared: is it a checkpoint of this architecture?"
        raise ValueError(
            f"{source} does not match the {type(model).__name__} architecture: " + "; ".join(problems) + "." + hint
        )
    model.load_state_dict(state, strict=True)
