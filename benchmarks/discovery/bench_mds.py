"""Most discriminative stimuli: iterations per second, and overhead over the bare gradient steps.

One MDS iteration is a stimulus step (``n_steps`` gradient steps on the K
cluster stimuli through the model) plus the reassignment of every unit. The
bare cost of the stimulus step is ``n_steps`` forward + backward passes of a
batch of K images through the same model; the ratio of the two is MDS's
overhead (projection onto the norm ball, the softmax contrast, reassignment).

Models: the planted population of the tests (4 Gabor types, 1 x 16 x 16
pixels, 80 units) and a randomly initialized timm ResNet-18 with a linear
readout to 500 units at 3 x 64 x 64 (the demo's scale).

Run: ``python benchmarks/discovery/bench_mds.py [--device cpu|cuda]``;
writes ``benchmarks/discovery/results_mds_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from neurodec.discovery import most_discriminative_stimuli

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "discovery"))
from mds_simulation import planted_population  # noqa: E402


class ResNetReadout(torch.nn.Module):
    """A random-weight ResNet-18's pooled features, linearly read out to ``n_units``."""

    def __init__(self, n_units: int) -> None:
        super().__init__()
        from neurodec.backbones import load

        self.backbone = load("timm/resnet18", weights="random", device="cpu").model
        self.backbone.reset_classifier(0)
        self.readout = torch.nn.Linear(512, n_units)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.readout(self.backbone(images))


def _bare_steps(model: torch.nn.Module, shape: tuple, k: int, n_steps: int, device: torch.device) -> float:
    """Seconds for ``n_steps`` forward + backward passes of K images (the stimulus step's unavoidable work)."""
    x = torch.rand((k, *shape), device=device, requires_grad=True)
    model(x).mean().backward()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n_steps):
        x.grad = None
        model(x).mean().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _case(name: str, model: torch.nn.Module, shape: tuple, k: int, n_steps: int, device: torch.device) -> dict:
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval().to(device)
    # Warm-up: the first call pays one-off costs (optimizer and kernel set-up) that are not per iteration.
    most_discriminative_stimuli(model, shape, k, n_steps=2, max_iter=1, random_state=0, device=device)
    start = time.perf_counter()
    result = most_discriminative_stimuli(model, shape, k, n_steps=n_steps, max_iter=5, random_state=0, device=device)
    seconds = time.perf_counter() - start
    per_iter = seconds / result.n_iter
    bare = _bare_steps(model, shape, k, n_steps, device)
    row = {
        "model": name, "image_shape": list(shape), "n_clusters": k, "n_steps": n_steps, "n_iter": int(result.n_iter),
        "seconds": round(seconds, 3), "iterations_per_second": round(1 / per_iter, 3),
        "bare_steps_seconds": round(bare, 3), "overhead": round(per_iter / bare, 3),
    }
    print(json.dumps(row))
    return row


def main() -> None:
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    _, population = planted_population(np.random.default_rng(0))
    rows = [
        _case("planted population (80 units)", population, (1, 16, 16), 4, 100, device),
        _case("timm/resnet18 random + linear readout (500 units)", ResNetReadout(500), (3, 64, 64), 4, 20, device),
    ]
    record = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}
    out = Path(__file__).with_name(f"results_mds_{device.type}.json")
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
