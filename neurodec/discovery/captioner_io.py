"""Saving and loading a fitted :class:`~neurodec.discovery.PrefixCaptioner` (one folder, written atomically).

The folder holds ``config.json`` (the captioner's settings), ``mapping.safetensors``
(the mapping network), ``decoder/`` (GPT-2, ``save_pretrained`` with safetensors)
and ``tokenizer/`` (the tokenizer's files).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._docs import fill_doc

if TYPE_CHECKING:
    from .captioner import PrefixCaptioner

__all__ = ["load_prefix_captioner", "save_prefix_captioner"]

_FORMAT = "neurodec-prefix-captioner/1"


def save_prefix_captioner(captioner: "PrefixCaptioner", path: str | os.PathLike) -> Path:
    """Write a fitted captioner to the folder ``path`` atomically and return the path.

    An existing folder at ``path`` is replaced only once the new one is complete.
    """
    from safetensors.torch import save_file

    if not hasattr(captioner, "mapping_"):
        raise ValueError("This PrefixCaptioner is not fitted yet; there is nothing to save.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        config = {
            "format": _FORMAT, "embed_dim": captioner.embed_dim_, "prefix_length": captioner.prefix_length,
            "mapping": captioner.mapping, "mapping_layers": captioner.mapping_layers,
            "normalize": captioner.normalize, "loss_history": captioner.loss_history_.tolist(),
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in captioner.mapping_.state_dict().items()}
        save_file(state, str(tmp / "mapping.safetensors"))
        captioner.decoder_.save_pretrained(tmp / "decoder", safe_serialization=True)
        captioner.tokenizer_.save_pretrained(tmp / "tokenizer")
        old = None
        if path.exists():  # swap: the old folder moves aside only once the new one is whole
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "captioner")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


@fill_doc
def load_prefix_captioner(path: str | os.PathLike, *, device: Any = "auto") -> PrefixCaptioner:
    """Read a captioner written by :meth:`PrefixCaptioner.save`.

    Parameters
    ----------
    path : path-like
        The captioner's folder.
    %(device)s

    Returns
    -------
    PrefixCaptioner
        Fitted, ready to ``generate``.
    """
    from safetensors.torch import load_file

    from .._device import resolve_device

    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"load_prefix_captioner: {path} has no config.json; it is not a saved PrefixCaptioner.")
    config = json.loads(config_path.read_text())
    if config.get("format") != _FORMAT:
        raise ValueError(f"load_prefix_captioner: {config_path} has format {config.get('format')!r}, expected {_FORMAT!r}.")
    from .captioner import PrefixCaptioner, _mapping_network

    captioner = PrefixCaptioner(
        path / "decoder", path / "tokenizer", prefix_length=config["prefix_length"], mapping=config["mapping"],
        mapping_layers=config["mapping_layers"], normalize=config["normalize"], device=device,
    )
    captioner._load_language_model()
    captioner._device = resolve_device(device)
    hidden = captioner.decoder_.get_input_embeddings().embedding_dim
    captioner.embed_dim_ = int(config["embed_dim"])
    captioner.mapping_ = _mapping_network(
        captioner.mapping, captioner.embed_dim_, hidden, captioner.prefix_length, captioner.mapping_layers
    )
    captioner.mapping_.load_state_dict(load_file(str(path / "mapping.safetensors")))
    captioner.mapping_.to(captioner._device).eval()
    captioner.decoder_.to(captioner._device).eval()
    captioner.loss_history_ = np.asarray(config["loss_history"])
    return captioner
