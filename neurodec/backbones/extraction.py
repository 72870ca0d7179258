"""Layer-wise feature extraction: stimuli -> one :class:`~neurodec.data.Features` per layer.

Forward hooks on the requested modules capture their outputs during one
forward pass per batch, which stops right after the last requested layer;
each output is pooled (see :mod:`.pooling`) inside the hook, so full
activation maps never outlive their batch. Batches are
preprocessed from the stimuli's uint8 images by the backbone's own
preprocessing (in a helper thread one batch ahead of the forward pass, or
in DataLoader worker processes; see :mod:`._forward`), and with a cache
each layer's rows are written to disk batch by batch (see :mod:`.cache`),
so memory does not grow with the number of stimuli and an interrupted run
resumes.

The model given is borrowed, not changed: it runs in eval mode on the
requested device during the extraction, and its training flags, device and
hooks are restored afterwards. Reduction arguments are checked against each
layer's feature count before extraction (from cached features and timm's
stage channels, else on the first batch, before any row is kept), so a too
large ``n_components`` fails at once rather than after the whole extraction.
"""

from __future__ import annotations

import contextlib
import hashlib
import numbers
import os
from collections.abc import Hashable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._device import resolve_device
from ..data.features import Features
from ..data.stimuli import Stimuli
from .cache import FeatureCache
from .device_preprocessing import PREPROCESS_ON
from ._forward import _StopForward  # noqa: F401  (re-exported: neurodec.discovery.encoder stops forwards with it)
from ._forward import run_forward as _run_forward
from .loading import Backbone, feature_stages
from .pooling import POOLINGS
from .reduction import REDUCTIONS, fit_reducer, transform_rows

if TYPE_CHECKING:
    import torch

__all__ = ["extract_features"]


class _MemorySink:
    """Rows kept in memory (no cache); same interface as cache.PartialFeatures."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self.done_rows = 0
        self.data: np.ndarray | None = None
        self.reducer: Any = None

    def write(self, start: int, rows: np.ndarray) -> None:
        if self.data is None:
            self.data = np.empty((self.n_rows, rows.shape[1]), dtype=np.float32)
        self.data[start : start + len(rows)] = rows
        self.done_rows = max(self.done_rows, start + len(rows))

    def write_reducer(self, reducer: Any) -> None:
        self.reducer = reducer


def _autocast_dtype(amp: bool | str, device: "torch.device") -> "torch.dtype | None":
    import torch

    if amp not in ("auto", True, False, "bf16"):
        raise ValueError(f"The 'amp' parameter must be 'auto', True, False or 'bf16'. Got {amp!r}.")
    if amp == "bf16":  # explicit: bfloat16 autocast on any device (CPU included)
        return torch.bfloat16
    if device.type != "cuda":
        if amp is True:
            raise ValueError("amp=True needs a CUDA device; automatic mixed precision runs on CUDA only.")
        return None
    if amp is False:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _as_stimuli(stimuli: Any) -> Stimuli:
    if isinstance(stimuli, Stimuli):
        return stimuli
    array = np.asarray(stimuli)
    if array.ndim in (3, 4):
        return Stimuli.from_array(array)
    raise ValueError(
        "The 'stimuli' parameter must be a neurodec.data.Stimuli or an array of images of shape "
        f"(n_images, height, width[, 3]). Got {type(stimuli).__name__} of shape {getattr(array, 'shape', None)}."
    )


@contextlib.contextmanager
def _borrowed(backbone: Backbone, device: "torch.device") -> Iterator[None]:
    """Run ``backbone`` in eval mode on ``device``; restore its training flags and device afterwards."""
    root = backbone.root
    training = [(module, module.training) for module in root.modules()]
    moved = device != backbone.device
    if moved:
        root.to(device)
    root.eval()
    try:
        yield
    finally:
        if moved:
            root.to(backbone.device)
        for module, flag in training:
            module.training = flag


def _check_args(pooling: str, grid: int, batch_size: int, reduction: str | None, n_components: int | None,
                fit_ids: Any, num_workers: Any = 0, amp_rtol: Any = 0.05) -> None:
    if not isinstance(num_workers, numbers.Integral) or isinstance(num_workers, bool) or num_workers < 0:
        raise ValueError(f"The 'num_workers' parameter must be a non-negative integer. Got {num_workers!r}.")
    if not isinstance(amp_rtol, numbers.Real) or isinstance(amp_rtol, bool) or not amp_rtol > 0:
        raise ValueError(f"The 'amp_rtol' parameter must be a positive number. Got {amp_rtol!r}.")
    if pooling not in POOLINGS:
        raise ValueError(f"The 'pooling' parameter must be one of {POOLINGS}. Got {pooling!r} instead.")
    if int(grid) < 1 or int(batch_size) < 1:
        raise ValueError(f"'grid' and 'batch_size' must be positive integers. Got grid={grid}, batch_size={batch_size}.")
    if reduction is None:
        return
    if reduction not in REDUCTIONS:
        raise ValueError(f"The 'reduction' parameter must be None or one of {REDUCTIONS}. Got {reduction!r}.")
    if n_components is None:
        raise ValueError(f"reduction={reduction!r} needs n_components (the output dimensionality).")
    if not isinstance(n_components, numbers.Integral) or isinstance(n_components, bool) or n_components < 1:
        raise ValueError(f"The 'n_components' parameter must be a positive integer. Got {n_components!r}.")
    if fit_ids is None:
        raise ValueError(
            f"reduction={reduction!r} needs fit_ids, the training stimulus ids the projection is fitted on, "
            "so that test stimuli do not shape it; pass fit_ids=stimuli.ids to fit on all deliberately."
        )


def _check_n_components(
    n_components: int, dims: dict[str, int], *, backbone: Backbone, pooling: str, grid: int
) -> None:
    """Raise, listing every layer with fewer features than ``n_components``."""
    small = {layer: dim for layer, dim in dims.items() if dim < n_components}
    if not small:
        return
    listing = ", ".join(f"{layer!r} has {dim}" for layer, dim in small.items())
    pooled = f"pooling='grid', grid={grid}" if pooling == "grid" else f"pooling={pooling!r}"
    raise ValueError(
        f"n_components={n_components} exceeds the number of features of {len(small)} layer(s) of "
        f"{backbone.name!r} with {pooled}: {listing}. Reduce to at most {min(dims.values())} components "
        "(n_components=...), leave those layers out (layers=...), or pool to more features "
        "(pooling='grid')."
    )


def extract_features(
    backbone: Backbone,
    stimuli: Stimuli | np.ndarray,
    *,
    layers: Sequence[str] | str | None = None,
    pooling: str = "avg",
    grid: int = 2,
    batch_size: int = 32,
    device: Any = None,
    amp: bool | str = "auto",
    amp_rtol: float = 0.05,
    num_workers: int = 0,
    preprocess_on: str = "host",
    reduction: str | None = None,
    n_components: int | None = None,
    fit_ids: Sequence[Hashable] | None = None,
    cache: FeatureCache | str | os.PathLike | None = None,
    random_state: int = 0,
    verbose: bool | int = True,
) -> dict[str, Features]:
    """Extract pooled features of ``stimuli`` at several layers of ``backbone``.

    Parameters
    ----------
    backbone : Backbone
        From :func:`~neurodec.backbones.load`.
    stimuli : Stimuli or array of shape (n_images, height, width[, 3])
        Images of any size and of grayscale/RGB/RGBA mode; each is converted
        to RGB and resized/cropped/normalized by ``backbone.preprocess``.
    layers : str or sequence of str, optional
        Module paths (see ``backbone.layer_names()``; "output" is the model's
        output). Defaults to ``backbone.layers``.
    pooling : {"avg", "max", "grid", "flatten", "cls"}
        How each layer's output becomes one vector per image; see
        :mod:`neurodec.backbones.pooling` for maps, tokens and vectors.
    grid : int
        Side of the spatial grid for ``pooling="grid"``.
    batch_size : int
        Images per forward pass.
    device : {"auto", "cpu", "cuda"} or torch.device, optional
        Where to run; defaults to ``backbone.device``. If it differs, the
        model is moved there for the extraction and moved back afterwards.
    amp : {"auto", True, False, "bf16"}
        Autocast to bfloat16 (float16 where bf16 is unsupported) on CUDA;
        "auto" enables it on CUDA only; "bf16" autocasts to bfloat16 on any
        device (CPU included); False runs float32.
    amp_rtol : float
        Under autocast, the first batch also runs in float32 and a warning
        names every layer whose features differ by more than ``amp_rtol``
        (relative Frobenius error over the batch). The default 0.05 allows
        ~13 bfloat16 rounding units (2**-8 = 3.9e-3) of accumulated error:
        measured on CPU, the bf16 features of timm's ConvNeXt-Atto and
        ResNet-18 (random weights, noise images) are within 1.4e-3 to 4.0e-3
        of float32 at every stage. The measured error is in
        ``features.meta["amp_relative_error"]``.
    num_workers : int
        0: images are decoded and preprocessed in one helper thread, a batch
        ahead of the forward pass; more: in that many worker processes of a
        ``torch.utils.data.DataLoader``. On CUDA, batches go through pinned
        memory with non-blocking copies either way.
    preprocess_on : {"host", "device"}
        "host": the backbone's preprocessing runs on PIL images on the CPU.
        "device": the host (helper thread or workers) only decodes images to
        RGB uint8 tensors, shape (n, 3, height, width) stacked per image
        size; these are copied to ``device`` (pinned, non-blocking on CUDA)
        and resized, cropped, scaled and normalized there by the
        torchvision.transforms.v2 pipeline of the same preprocessing (see
        :func:`~neurodec.backbones.device_preprocessing.device_pipeline`,
        which raises naming any step it cannot express). Resized pixels
        differ from PIL's by at most one uint8 level (different fixed-point
        rounding of the same antialiased kernels), so the cache keeps these
        features apart from the host path's. Meant for GPUs: on a CPU device
        the resizing leaves the helper thread for the main one (measured
        0.84x the default's throughput on 2 cores).
    reduction : {None, "pca", "srp"}
        Reduce each layer to ``n_components`` dimensions with PCA or a sparse
        random projection, fitted on the rows of ``fit_ids`` only, applied
        to all rows. The fitted reducer is ``features.meta["reducer"]``.
    n_components : int, optional
        Output dimensionality of the reduction; at most the number of
        features of every requested layer (and, for PCA, the number of
        ``fit_ids``). Checked before extraction (from cached features and
        timm's stage channels where known, else on the first batch, before
        any row is kept), naming every layer that is too small.
    fit_ids : sequence of hashable, optional
        Training stimulus ids to fit the reduction on (required with ``reduction``).
    cache : FeatureCache or path-like, optional
        Cache folder: finished layers are reused (after validating their
        key), unfinished ones resume, new rows are written batch by batch.
        Cached features are returned as read-only HDF5-backed arrays.
    random_state : int
        Seed of the reduction (PCA's randomized solvers, the random projection).
    verbose : bool or int
        Show progress bars.

    Returns
    -------
    dict of str -> Features
        One entry per layer, data of shape (n_stimuli, n_features) in the
        order of ``stimuli.ids``; ``meta`` records backbone, weights, layer,
        pooling, reduction, preprocessing, precision and the stimulus hash.

    Examples
    --------
    >>> bb = load("timm/resnet50", weights="random")  # doctest: +SKIP
    >>> feats = extract_features(bb, stimuli, layers=["layer3", "layer4"], pooling="avg")  # doctest: +SKIP
    >>> feats["layer4"].data.shape  # doctest: +SKIP
    (n_stimuli, 2048)

    Notes
    -----
    The backbone is not modified: it runs in eval mode (dropout off,
    batch-norm statistics frozen) under ``torch.inference_mode``, and its
    modules' training flags, its device and its hooks are as before when the
    call returns (or raises).
    """
    _check_args(pooling, grid, batch_size, reduction, n_components, fit_ids, num_workers, amp_rtol)
    if preprocess_on not in PREPROCESS_ON:
        raise ValueError(f"The 'preprocess_on' parameter must be one of {PREPROCESS_ON}. Got {preprocess_on!r}.")
    stimuli = _as_stimuli(stimuli)
    layers = backbone.check_layers(list(backbone.layers) if layers is None else layers)
    dev = backbone.device if device is None else resolve_device(device)
    autocast = _autocast_dtype(amp, dev)
    ids = list(stimuli.ids)
    cache = FeatureCache(cache) if cache is not None and not isinstance(cache, FeatureCache) else cache
    pooled = f"{pooling}{grid}" if pooling == "grid" else pooling
    # Device-side resizing rounds differently from PIL's: its features get their own cache key.
    described = backbone.preprocess.description + ("; on device" if preprocess_on == "device" else "")
    base = {
        "backbone": backbone.name, "weights": backbone.weights, "pooling": pooled,
        "preprocessing": hashlib.sha256(described.encode()).hexdigest(),
        "precision": str(autocast or "torch.float32").replace("torch.", ""), "stimuli": stimuli.content_hash(),
    }
    reduced = "none"
    if reduction is not None:
        position = {sid: row for row, sid in enumerate(ids)}
        unknown = [sid for sid in fit_ids if sid not in position]
        if unknown:
            raise ValueError(f"fit_ids has {len(unknown)} id(s) that are not among the stimuli, e.g. {unknown[:10]}.")
        fit_rows = np.unique([position[sid] for sid in fit_ids])  # sorted: HDF5 reads need increasing rows
        if reduction == "pca" and n_components > len(fit_rows):
            raise ValueError(
                f"n_components={n_components} for PCA must be between 1 and min(n_fit_stimuli, n_features); "
                f"fit_ids holds {len(fit_rows)} distinct stimuli."
            )
        fit_digest = hashlib.sha256(repr([str(i) for i in fit_ids]).encode()).hexdigest()[:16]
        reduced = f"{reduction}:n={n_components};seed={random_state};fit={fit_digest}"

    results: dict[str, tuple[Any, Any]] = {}
    amp_errors: dict[str, float] = {}
    raw_data: dict[str, Any] = {}
    to_extract = []
    for layer in layers:
        key = {**base, "layer": layer, "reduction": "none"}
        hit = None if cache is None else cache.load({**key, "reduction": reduced}, ids)
        if hit is not None:
            results[layer] = hit
            continue
        raw = None if cache is None or reduction is None else cache.load(key, ids)
        if raw is not None:
            raw_data[layer] = raw[0]
        else:
            to_extract.append(layer)
    # Feature counts known without a forward pass: cached raw features, and
    # timm stages (channels) under average or max pooling; the others come
    # from the first batch.
    known = {layer: int(data.shape[1]) for layer, data in raw_data.items()}
    if pooling in ("avg", "max"):
        stages = feature_stages(backbone.model)
        known |= {layer: int(stages[layer]) for layer in to_extract if stages.get(layer)}

    def check_dims(dims: dict[str, int]) -> None:
        if reduction is not None:
            _check_n_components(n_components, {**known, **dims}, backbone=backbone, pooling=pooling, grid=int(grid))

    check_dims({})
    raw_sinks = {
        layer: _MemorySink(len(ids)) if cache is None
        else cache.open_partial({**base, "layer": layer, "reduction": "none"}, ids)
        for layer in to_extract
    }
    if raw_sinks:
        try:
            with _borrowed(backbone, dev):
                amp_errors = _run_forward(
                    backbone, stimuli, raw_sinks, pooling=pooling, grid=int(grid), batch_size=int(batch_size),
                    device=dev, autocast=autocast, verbose=verbose, check_dims=check_dims,
                    num_workers=int(num_workers), amp_rtol=float(amp_rtol), preprocess_on=preprocess_on,
                )
        finally:
            if cache is not None:
                for sink in raw_sinks.values():
                    if sink.done_rows < sink.n_rows:
                        sink.close()
        for layer, sink in raw_sinks.items():
            if cache is None:
                raw_data[layer] = sink.data
            else:
                sink.finalize()
                raw_data[layer] = cache.load({**base, "layer": layer, "reduction": "none"}, ids)[0]
    for layer, data in raw_data.items():
        if reduction is None:
            results[layer] = (data, None)
            continue
        reducer = fit_reducer(reduction, np.asarray(data[fit_rows], dtype=np.float32), n_components=n_components,
                              random_state=random_state)
        key = {**base, "layer": layer, "reduction": reduced}
        sink = _MemorySink(len(ids)) if cache is None else cache.open_partial(key, ids)
        for start, rows_out in transform_rows(reducer, data):
            sink.write(start, rows_out)
        sink.write_reducer(reducer)
        if cache is None:
            results[layer] = (sink.data, reducer)
        else:
            sink.finalize()
            results[layer] = cache.load(key, ids)

    out = {}
    for layer in layers:
        data, reducer = results[layer]
        # The readable preprocessing beside its hash (the cache key): what a Methods section states.
        meta = {**base, "layer": layer, "reduction": reduced, "grid": int(grid),
                "preprocessing_description": backbone.preprocess.description, "preprocess_on": preprocess_on}
        if reducer is not None:
            meta["reducer"] = reducer
        if layer in amp_errors:  # measured on the first batch of this call (not for cached layers)
            meta["amp_relative_error"] = amp_errors[layer]
        out[layer] = Features(data, np.asarray(ids), name=f"{backbone.name}/{layer}", meta=meta)
    return out
