"""Make ``import torchvision`` (hence timm, open_clip) work where its compiled ops cannot load.

Some torchvision builds (e.g. the registry's CUDA wheel beside a CPU-only
torch) fail to load their C++ extension; ``import torchvision`` then dies
with ``RuntimeError: operator torchvision::nms does not exist`` because
``torchvision/_meta_registrations.py`` registers fake kernels for operators
that were never defined. timm and open_clip import torchvision, so every
backbone would be unusable, and so would a user's own ``import timm``.

:func:`enable_torchvision` first imports torchvision normally. Only if that
fails with this specific error does it define the ``torchvision::nms`` and
``torchvision::qnms`` operator schemas with a plain-torch CPU implementation
of non-maximum suppression, import torchvision again, and let
``torchvision.ops.nms`` / ``batched_nms`` use that implementation.
Transforms, models and the pure-Python ops then work; the ``torchvision.io``
codecs and the other compiled ops (``roi_align``, ``deform_conv2d``, ...)
remain unavailable. Where torchvision loads normally it changes nothing.
The module itself imports nothing heavy, so it can be imported eagerly.
"""

from __future__ import annotations

import sys
from types import ModuleType

__all__ = ["enable_torchvision"]

_LIBRARY = None  # keeps the torch.library.Library alive once defined


def _nms(boxes, scores, iou_threshold: float):  # type: ignore[no-untyped-def]
    """Greedy non-maximum suppression in plain torch (boxes as x1, y1, x2, y2)."""
    import torch

    order = torch.argsort(scores, descending=True)
    boxes = boxes[order]
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas - inter).clamp(min=torch.finfo(inter.dtype).tiny)
        suppressed |= iou > iou_threshold
    return order[torch.as_tensor(keep, dtype=torch.long, device=boxes.device)]


def _qnms(dets, scores, iou_threshold: float):  # type: ignore[no-untyped-def]
    # torchvision passes the integer representations of quantized boxes; IoU is
    # invariant to the shared scale and zero point, so they are used as they are.
    def as_float(t):  # type: ignore[no-untyped-def]
        return t.dequantize() if t.is_quantized else t.float()

    return _nms(as_float(dets), as_float(scores), iou_threshold)


def _define_ops() -> None:
    global _LIBRARY
    import torch

    if _LIBRARY is not None:
        return
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor qscores, float iou_threshold) -> Tensor")
    lib.impl("nms", _nms, "CPU")
    lib.impl("qnms", _qnms, "CPU")
    _LIBRARY = lib


def _assert_shim_ops() -> None:
    """Stands in for ``torchvision.extension._assert_has_ops`` in ``torchvision.ops.boxes``: nms is defined."""


def enable_torchvision() -> ModuleType:
    """Import and return torchvision, defining its missing nms ops first if its extension cannot load.

    Call it once before your own ``import torchvision``, ``import timm`` or
    ``import open_clip`` in an environment where torchvision's compiled ops do
    not match torch (``RuntimeError: operator torchvision::nms does not
    exist``); :func:`neurodec.backbones.load` calls it itself. Idempotent,
    and inert where torchvision imports normally (it then just imports it).
    It also recovers after such an import has already failed once.

    Returns
    -------
    module
        The ``torchvision`` module.

    Examples
    --------
    >>> from neurodec.backbones import enable_torchvision
    >>> torchvision = enable_torchvision()  # doctest: +SKIP
    >>> import timm  # works now  # doctest: +SKIP
    """
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::nms does not exist" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _define_ops()
        import torchvision
        import torchvision.ops.boxes

        if not torchvision.extension._has_ops():
            torchvision.ops.boxes._assert_has_ops = _assert_shim_ops
    return torchvision
