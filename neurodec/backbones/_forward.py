"""The forward loop of :func:`~neurodec.backbones.extract_features`: batches in, pooled rows out.

Batches are preprocessed from the stimuli's uint8 images by the backbone's
own preprocessing, off the forward pass: in one helper thread
(``num_workers=0``, one batch ahead) or in ``num_workers`` worker processes
of a :class:`torch.utils.data.DataLoader` (decoding and resizing in
parallel, no GIL). On CUDA, batches land in pinned memory and are copied
with ``non_blocking=True``, so the copy of one batch overlaps the work of
the previous one.

With ``preprocess_on="device"`` the host only decodes: batches are RGB uint8
tensors stacked per image size (:func:`.device_preprocessing.uint8_groups`),
copied to the device the same way, and resized, cropped and normalized
there by the v2 pipeline built from the backbone's preprocessing
(:func:`.device_preprocessing.device_pipeline`).

Mixed precision: under autocast the first batch also runs in float32, and
the relative error of every layer's pooled features,
``||f_amp - f_32|| / ||f_32||`` (Frobenius, over the batch), is compared to
``amp_rtol``; above it a warning names the layers and their errors.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from .._logging import progress
from .device_preprocessing import device_pipeline, uint8_groups
from .preprocessing import to_pil_rgb
from ..data.stimuli import Stimuli
from .loading import OUTPUT, Backbone, feature_stages
from .pooling import pool_output

if TYPE_CHECKING:
    import torch

__all__ = ["run_forward"]


class _StopForward(Exception):
    """Raised by a hook once every requested layer has its output (see run_forward)."""


def _batch(backbone: Backbone, stimuli: Stimuli, ids: Sequence[Hashable]) -> "torch.Tensor":
    import torch

    tensors = []
    for stimulus_id in ids:
        try:
            tensors.append(backbone.preprocess(stimuli.get_image(stimulus_id)))
        except ValueError as exc:
            raise ValueError(f"Stimulus {stimulus_id!r} of {stimuli.name!r}: {exc}") from exc
    shapes = sorted({tuple(t.shape) for t in tensors})
    if len(shapes) > 1:
        raise ValueError(
            f"Preprocessed images of {stimuli.name!r} differ in shape ({shapes[:3]}); batching needs one size. "
            "Load the backbone with a preprocess that resizes and crops to a fixed size, e.g. "
            "preprocess={'resize': 256, 'crop': 224}."
        )
    return torch.stack(tensors)


def _uint8_batch(backbone: Backbone | None, stimuli: Stimuli, ids: Sequence[Hashable]) -> list[tuple[Any, Any]]:
    """Decoded batch for the device path: [(positions, uint8 tensor (n, 3, h, w))], one entry per image size."""
    import torch

    images = []
    for stimulus_id in ids:
        try:
            images.append(np.asarray(to_pil_rgb(stimuli.get_image(stimulus_id))))
        except ValueError as exc:
            raise ValueError(f"Stimulus {stimulus_id!r} of {stimuli.name!r}: {exc}") from exc
    return [(torch.from_numpy(pos), x) for pos, x in uint8_groups(images)]


class _Batches:
    """Map-style dataset of preprocessed batches (one item = one batch), for DataLoader workers."""

    def __init__(self, make: Callable[..., Any], backbone: Backbone | None, stimuli: Stimuli,
                 groups: list[list[Hashable]]) -> None:
        self.make, self.backbone, self.stimuli, self.groups = make, backbone, stimuli, groups

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> Any:
        return self.make(self.backbone, self.stimuli, self.groups[i])


def _thread_batches(make: Callable[..., Any], backbone: Backbone | None, stimuli: Stimuli,
                    groups: list[list[Hashable]]):
    """Prepared batches, the next one made in a helper thread (PIL and torch release the GIL)."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pending = pool.submit(make, backbone, stimuli, groups[0]) if groups else None
        for i in range(len(groups)):
            x = pending.result()
            if i + 1 < len(groups):
                pending = pool.submit(make, backbone, stimuli, groups[i + 1])
            yield x
    finally:
        pool.shutdown(cancel_futures=True)


def _pinned(x: Any) -> Any:
    if isinstance(x, list):  # the device path's [(positions, uint8 images)]
        return [(pos, images.pin_memory()) for pos, images in x]
    return x.pin_memory()


def batch_source(backbone: Backbone, stimuli: Stimuli, groups: list[list[Hashable]], *, num_workers: int,
                 pin_memory: bool, uint8: bool = False):
    """Iterator over preprocessed batches (CPU tensors), in order.

    Parameters
    ----------
    backbone : Backbone
    stimuli : Stimuli
    groups : list of list of hashable
        Stimulus ids of each batch.
    num_workers : int
        0: one helper thread; more: that many DataLoader worker processes.
    pin_memory : bool
        Return page-locked tensors (for non-blocking copies to CUDA).
    uint8 : bool
        Decode only: each batch is a list of (positions, uint8 tensor of
        shape (n, 3, height, width)), one per image size, for the device path.
    """
    make, owner = (_uint8_batch, None) if uint8 else (_batch, backbone)  # workers need no model to decode
    if num_workers == 0:
        for x in _thread_batches(make, owner, stimuli, groups):
            yield _pinned(x) if pin_memory else x
        return
    from torch.utils.data import DataLoader

    # batch_size=None: each item is already a batch; workers keep two batches each in flight.
    yield from DataLoader(_Batches(make, owner, stimuli, groups), batch_size=None, shuffle=False,
                          num_workers=num_workers, pin_memory=pin_memory, prefetch_factor=2)


def _on_device(groups: list[tuple[Any, Any]], pipeline: Callable[[Any], Any], device: "torch.device",
               name: str) -> "torch.Tensor":
    """Copy each size group to ``device``, preprocess it there, and put the images back in batch order."""
    import torch

    outs = [(pos, pipeline(images.to(device, non_blocking=device.type == "cuda"))) for pos, images in groups]
    shapes = sorted({tuple(out.shape[1:]) for _, out in outs})
    if len(shapes) > 1:
        raise ValueError(
            f"Preprocessed images of {name!r} differ in shape ({shapes[:3]}); batching needs one size. "
            "Load the backbone with a preprocess that resizes and crops to a fixed size, e.g. "
            "preprocess={'resize': 256, 'crop': 224}."
        )
    if len(outs) == 1:
        return outs[0][1]
    x = torch.empty((sum(len(pos) for pos, _ in outs), *shapes[0]), dtype=outs[0][1].dtype, device=device)
    for pos, out in outs:
        x[pos.to(device)] = out
    return x


def _relative_errors(amp: dict[str, "torch.Tensor"], ref: dict[str, "torch.Tensor"]) -> dict[str, float]:
    return {layer: float((amp[layer] - ref[layer]).norm() / ref[layer].norm().clamp_min(1e-30)) for layer in ref}


def run_forward(
    backbone: Backbone, stimuli: Stimuli, sinks: dict[str, Any], *, pooling: str, grid: int, batch_size: int,
    device: "torch.device", autocast: "torch.dtype | None", verbose: bool | int,
    check_dims: Callable[[dict[str, int]], None] | None = None, num_workers: int = 0, amp_rtol: float = 0.05,
    preprocess_on: str = "host",
) -> dict[str, float]:
    """Fill every sink with its layer's pooled rows, from the first row any of them lacks.

    ``check_dims`` gets every layer's feature count after the first forward
    pass, before any row is written, and may raise. Returns the relative
    error of each layer's features under autocast against float32, measured
    on the first batch (empty without autocast).
    """
    import torch

    ids = list(stimuli.ids)
    start = min(sink.done_rows for sink in sinks.values())
    channels = feature_stages(backbone.model)
    captured: dict[str, torch.Tensor] = {}
    # The first batch runs the whole model and counts the hook calls; later
    # batches stop once that many calls have fired, i.e. right after the last
    # requested layer, skipping the rest of the network. A module called
    # several times per forward keeps its last call's output either way.
    calls = {"seen": 0, "needed": None}

    def hook_for(layer: str) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            pooled = pool_output(output, pooling, grid=grid, layer=layer, channels=channels.get(layer))
            captured[layer] = pooled.float().cpu()
            calls["seen"] += 1
            if calls["seen"] == calls["needed"]:
                raise _StopForward

        return hook

    def forward(x: torch.Tensor, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
        captured.clear()
        calls["seen"] = 0
        amp = torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
        with torch.inference_mode(), amp:
            try:
                backbone.model(x)
            except _StopForward:
                pass
        return dict(captured)

    modules = {layer: backbone.model if layer == OUTPUT else backbone.model.get_submodule(layer) for layer in sinks}
    handles = [module.register_forward_hook(hook_for(layer)) for layer, module in modules.items()]
    starts = list(range(start, len(ids), batch_size))
    groups = [ids[b0 : b0 + batch_size] for b0 in starts]
    cuda = device.type == "cuda"
    errors: dict[str, float] = {}
    batches = None
    # Built before any worker starts, so that an unsupported step fails at once.
    pipeline = device_pipeline(backbone.preprocess) if preprocess_on == "device" else None
    try:
        batches = batch_source(backbone, stimuli, groups, num_workers=num_workers, pin_memory=cuda,
                               uint8=pipeline is not None)
        bar = progress(starts, verbose=verbose, desc=f"{backbone.name} features", unit="batch")
        for i, (b0, x) in enumerate(zip(bar, batches)):
            if pipeline is not None:
                x = _on_device(x, pipeline, device, stimuli.name)
            else:
                x = x.to(device, non_blocking=cuda)  # pinned source: the copy overlaps the previous batch's work
            out = forward(x, autocast)
            calls["needed"] = calls["seen"]
            missing = [layer for layer in sinks if layer not in out]
            if missing:
                raise ValueError(f"Layers {missing} of {backbone.name!r} were not called by the model's forward pass.")
            if i == 0 and autocast is not None:
                errors = _relative_errors(out, forward(x, None))
                _warn_if_above(errors, amp_rtol, autocast)
            if i == 0 and check_dims is not None:
                check_dims({layer: int(out[layer].shape[1]) for layer in sinks})
            for layer, sink in sinks.items():
                if sink.done_rows < b0 + len(x):
                    sink.write(b0, out[layer].numpy())
    finally:
        if batches is not None:
            batches.close()  # stops the helper thread or the DataLoader workers now, also after an error
        for handle in handles:
            handle.remove()
    return errors


def _warn_if_above(errors: dict[str, float], rtol: float, dtype: "torch.dtype") -> None:
    above = {layer: err for layer, err in errors.items() if err > rtol}
    if above:
        listing = ", ".join(f"{layer!r}: {err:.2e}" for layer, err in above.items())
        warnings.warn(
            f"Autocast to {str(dtype).replace('torch.', '')} moved the features away from float32 on the first "
            f"batch beyond amp_rtol={rtol:g} (relative error {listing}). Use amp=False for float32 features "
            "or raise amp_rtol if this error is acceptable.",
            UserWarning,
            stacklevel=4,
        )
