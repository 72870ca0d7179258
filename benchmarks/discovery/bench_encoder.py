"""Differentiable brain encoder: forward + backward to the pixels, against the bare backbone.

The encoder (tensor preprocessing, hooked layers, pooling, PCA, standardization
and a ridge head over many units) is timed on the same image batch as the
backbone's own forward pass and backward to the pixels (loss: the sum of the
model's output). The ratio is the encoder's overhead on a gradient step of a
discovery method (BrainDiVE guidance, most discriminative stimuli).

Run: ``python benchmarks/discovery/bench_encoder.py [--device cpu|cuda] [--size 112] [--batch 16]``.
Writes ``benchmarks/discovery/results_encoder_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from neurodec.backbones import extract_features, load
from neurodec.data import Responses, Stimuli
from neurodec.discovery import BrainEncoder, roi_mean
from neurodec.encoding import EncodingModel


def _timed(step, device: torch.device, repeats: int) -> list[float]:
    step()  # warm-up (first pass also learns where the encoder's forward stops)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    backbone = load("timm/resnet18", weights="random", device=device,
                    preprocess={"resize": args.size, "crop": args.size})
    rng = np.random.default_rng(0)
    n = 120
    stimuli = Stimuli.from_array(rng.integers(0, 256, size=(n, args.size, args.size, 3), dtype=np.uint8))
    layers = ["layer3", "layer4"]
    features = extract_features(backbone, stimuli, layers=layers, pooling="grid", grid=2, reduction="pca",
                                n_components=64, fit_ids=stimuli.ids, verbose=False)
    X = np.hstack([f.data for f in features.values()])
    Y = X @ rng.normal(size=(X.shape[1], args.units)) + rng.normal(size=(n, args.units))
    trials = pd.DataFrame({"stimulus_id": stimuli.ids, "session": 0, "run": 0, "repeat": 0, "split": "train"})
    responses = Responses(Y.astype(np.float32), trials, pd.DataFrame({"unit": range(args.units)}), "bench")
    model = EncodingModel(alphas=np.logspace(0, 4, 5), cv=3, device=device).fit(list(features.values()), responses)
    encoder = BrainEncoder.from_fitted(backbone, model, list(features.values()))
    objective = roi_mean(np.arange(args.units // 2))
    images = torch.rand(args.batch, 3, args.size, args.size, device=device)

    def encoder_step() -> None:
        x = images.clone().requires_grad_(True)
        objective(encoder(x)).sum().backward()

    def backbone_step() -> None:
        x = images.clone().requires_grad_(True)
        backbone.model(x).sum().backward()

    encoder_times = _timed(encoder_step, device, args.repeats)
    backbone_times = _timed(backbone_step, device, args.repeats)
    enc, bare = statistics.median(encoder_times), statistics.median(backbone_times)
    results = {
        "device": str(device), "backbone": "timm/resnet18 (random)", "image_size": args.size, "batch": args.batch,
        "layers": layers, "pooling": "grid2", "reduction": "pca 64 per layer", "units": args.units,
        "threads": torch.get_num_threads(),
        "encoder_s": encoder_times, "backbone_s": backbone_times,
        "encoder_images_per_s": args.batch / enc, "backbone_images_per_s": args.batch / bare,
        "encoder_over_backbone_time": enc / bare,
    }
    out = Path(__file__).with_name(f"results_encoder_{device.type}.json")
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if not k.endswith("_s")}, indent=2))


if __name__ == "__main__":
    main()
