"""Make ``import torchvision`` work where its compiled ops cannot load.

Some torchvision builds (e.g. a CUDA wheel beside a CPU-only torch) fail to
load their C++ extension; ``import torchvision`` then dies with
``RuntimeError: operator torchvision::nms does not exist`` because
``torchvision/_meta_registrations.py`` registers fake kernels for operators
that were never defined. timm and open_clip import torchvision, so every
backbone would be unusable.

:func:`import_torchvision` first imports torchvision normally. Only if that
fails with this specific error does it define the ``torchvision::nms`` and
``torchvision::qnms`` operator schemas with a plain-torch CPU implementation of
non-maximum suppression, then imports torchvision again. Transforms, models
and most ops then work; the ``torchvision.io`` codecs remain unavailable.
Where torchvision loads normally this module changes nothing.
"""

from __future__ import annotations

import sys
from types import ModuleType

__all__ = ["import_torchvision"]

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
    return _nms(dets.dequantize(), scores.dequantize(), iou_threshold)


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


def import_torchvision() -> ModuleType:
    """Import and return torchvision, defining missing ops first if needed."""
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
    return torchvision
