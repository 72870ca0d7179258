"""Saving and loading fitted encoding models (``.npz``, no pickle), so pipelines reuse finished fits."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from .._io import atomic_path, warn_if_other_version
from .._logging import get_logger
from ..data.features import Features
from ..data.responses import Responses
from ._inputs import as_spaces, training_fingerprint
from ._split_reader import SplitReader
from .model import _FITTED, EncodingModel

__all__ = ["fit_or_load_encoding_model", "load_encoding_model", "save_encoding_model"]

logger = get_logger(__name__)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def save_encoding_model(model: EncodingModel, path: str | os.PathLike) -> Path:
    """Write a fitted :class:`EncodingModel` to an ``.npz`` file atomically.

    The file holds the fitted arrays and a JSON record of the parameters, feature
    spaces, excluded units, training subject/space and neurodec version; no pickle.
    """
    model._check_fitted()
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"EncodingModel.save writes .npz files. Got {path.name!r}.")
    meta = {
        "params": _json_params(model),
        "feature_names": model.feature_names_,
        "feature_slices": [[s.start, s.stop] for s in model.feature_slices_],
        "n_train": model.n_train_,
        "subject": model.subject_,
        "space": model.space_,
        "fingerprint": model.fingerprint_,
        "excluded_reasons": model.excluded_units_["reason"].tolist(),
        "neurodec_version": __version__,
    }
    arrays = {name: getattr(model, name) for name in _FITTED}
    arrays["excluded_units"] = model.excluded_units_["unit"].to_numpy()
    if hasattr(model, "best_gammas_"):
        arrays["best_gammas_"] = model.best_gammas_
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
    return path


def load_encoding_model(path: str | os.PathLike) -> EncodingModel:
    """Read a model written by :meth:`EncodingModel.save`.

    Parameters that were not JSON-serializable (e.g. a scikit-learn splitter
    given as ``cv``) come back at their defaults; the fitted state is exact.
    The model's ``loaded_from_`` attribute records ``path``. A file written by
    another neurodec version is loaded with a warning.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved encoding model at {path}.")
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
        model = EncodingModel(**meta["params"])
        for name in _FITTED + ("best_gammas_",):
            if name in archive:
                setattr(model, name, archive[name])
        model.excluded_units_ = pd.DataFrame({"unit": archive["excluded_units"], "reason": meta["excluded_reasons"]})
    model.valid_units_ = model.valid_units_.astype(bool)
    model.feature_names_ = meta["feature_names"]
    model.feature_slices_ = [slice(a, b) for a, b in meta["feature_slices"]]
    model.n_train_, model.subject_, model.space_ = meta["n_train"], meta["subject"], meta["space"]
    model.fingerprint_ = meta["fingerprint"]
    model.loaded_from_ = path
    warn_if_other_version(path, meta.get("neurodec_version"))
    return model


def _json_params(model: EncodingModel) -> dict[str, Any]:
    params = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in model.get_params().items()}
    return {k: v for k, v in params.items() if _is_json(v)}


def load_matching_encoding_model(
    path: str | os.PathLike,
    features: Features | Sequence[Features],
    responses: Responses,
    **params: Any,
) -> EncodingModel | None:
    """The fit saved at ``path`` if it was made with ``params`` on these data, else None.

    A saved fit matches when its parameters equal ``params`` and its training
    fingerprint (feature spaces, training stimuli and a sample of the
    responses) equals that of ``features`` and ``responses``; when it does
    not, the reason is logged.

    Parameters
    ----------
    path : path-like
        ``.npz`` file of the fit (need not exist).
    features, responses
        As in :meth:`EncodingModel.fit`.
    **params
        :class:`EncodingModel` parameters.
    """
    path = Path(path)
    if not path.exists():
        return None
    model = EncodingModel(**params)
    saved = load_encoding_model(path)
    train = SplitReader(responses, "train", average=model.average_repeats)
    if _json_params(saved) != _json_params(model):
        logger.info("Refitting %s: saved with other parameters.", path)
    elif saved.fingerprint_ != training_fingerprint(as_spaces(features), train):
        logger.info("Refitting %s: the training data changed.", path)
    else:
        logger.info("Reusing the fit saved at %s.", path)
        return saved
    return None


def fit_or_load_encoding_model(
    path: str | os.PathLike,
    features: Features | Sequence[Features],
    responses: Responses,
    **params: Any,
) -> EncodingModel:
    """Reuse the fit saved at ``path`` when it matches, else fit, save and return a new one.

    See :func:`load_matching_encoding_model` for when a saved fit matches; a
    new fit overwrites ``path`` atomically.

    Parameters
    ----------
    path : path-like
        ``.npz`` file of the fit.
    features, responses
        As in :meth:`EncodingModel.fit`.
    **params
        :class:`EncodingModel` parameters.

    Returns
    -------
    EncodingModel
        Fitted; a reused fit has the attribute ``loaded_from_`` (its path).
    """
    saved = load_matching_encoding_model(path, features, responses, **params)
    if saved is not None:
        return saved
    model = EncodingModel(**params)
    model.fit(features, responses)
    save_encoding_model(model, path)
    return model
