"""neurodec.backbones.enable_torchvision: a user's own torchvision / timm imports, and the CPU nms it provides."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from neurodec.backbones import enable_torchvision

BOXES = [[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [21, 19, 30, 31]]
SCORES = [0.9, 0.8, 0.7, 0.95]

# A fresh interpreter: a user's own import first (it fails where torchvision's
# compiled ops do not match torch), then the public function, twice.
USER_SESSION = f"""
import sys
try:
    import timm
except RuntimeError as exc:
    assert "torchvision::nms does not exist" in str(exc), exc
import torch
import neurodec.backbones as backbones
tv = backbones.enable_torchvision()
assert backbones.enable_torchvision() is tv
import torchvision, timm
assert torchvision is tv
boxes, scores = torch.tensor({BOXES}, dtype=torch.float32), torch.tensor({SCORES})
print(torchvision.ops.nms(boxes, scores, 0.5).tolist())
print(torchvision.ops.batched_nms(boxes, scores, torch.tensor([0, 1, 0, 0]), 0.5).tolist())
print(type(timm.create_model("resnet10t", pretrained=False)).__name__)
"""


def test_enable_torchvision_lets_users_import_torchvision_and_timm():
    out = subprocess.run([sys.executable, "-c", USER_SESSION], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[3,", "0]", "[3,", "0,", "1]", "ResNet"]


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(box[:2], others[:, :2]).T
    x2, y2 = np.minimum(box[2:], others[:, 2:]).T
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / (area + areas - inter)


def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Keep boxes in decreasing score order unless one already kept overlaps them by more than ``threshold``."""
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if not keep or not np.any(_iou(boxes[i], boxes[keep]) > threshold):
            keep.append(int(i))
    return keep


def test_nms_matches_a_greedy_reference(rng):
    torchvision = enable_torchvision()  # in-process: idempotent after the other tests' imports
    assert enable_torchvision() is torchvision is sys.modules["torchvision"]
    corners = rng.uniform(0, 50, size=(60, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(1, 20, size=(60, 2))], axis=1).astype(np.float32)
    scores = rng.permutation(60).astype(np.float32)
    for threshold in (0.1, 0.3, 0.7):
        got = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).tolist()
        assert got == _greedy_nms(boxes, scores, threshold)
