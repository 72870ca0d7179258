"""RepMLPNet: forward time before and after Locality Injection (structural re-parameterization).

Merging the 1x1/3x3 convolution branches and BatchNorms into the partition FC
removes the branches at inference without changing the outputs. This measures
what that buys on this machine for RepMLPNet-T224 and checks the outputs agree.
It also times each stage's partition FC as the authors apply it (a grouped 1x1
``conv2d`` over 1x1 maps) against neurodec's batched matrix product.

    python benchmarks/backbones/bench_repmlp_locality_injection.py [--batch 8] [--repeats 5]

Prints a table and writes ``bench_repmlp_locality_injection.json`` next to this script.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from neurodec._io import write_json_atomic
from neurodec.backbones.archs.repmlp import repmlpnet_t224


def _best_time(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int) -> float:
    with torch.no_grad():
        model(x)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return min(times)


def _fc3_times(model: torch.nn.Module, batch: int, repeats: int) -> list[dict]:
    """Per stage: the partition FC as a grouped 1x1 convolution vs as a batched matmul."""
    rows = []
    for i, stage in enumerate(model.stages):
        block = stage[0].repmlp_block
        hw = block.h * block.w
        n_partitions = batch * (224 // 4 // 2**i // block.h) ** 2 * block.C // block.S
        x = torch.randn(n_partitions, block.S, hw)
        weight = block.fc3.weight
        conv = _best_time(lambda x: F.conv2d(x.reshape(-1, block.S * hw, 1, 1), weight, groups=block.S), x, repeats)
        matmul = _best_time(block._fc3, x, repeats)
        rows.append({"stage": i, "share_sets": block.S, "partition": hw, "conv2d_s": conv, "matmul_s": matmul})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = repmlpnet_t224().eval()
    x = torch.randn(args.batch, 3, 224, 224)
    with torch.no_grad():
        before = model(x)
    train_s = _best_time(model, x, args.repeats)
    n_train = sum(p.numel() for p in model.parameters())
    model.locality_injection()
    with torch.no_grad():
        max_diff = (model(x) - before).abs().max().item()
    deploy_s = _best_time(model, x, args.repeats)
    n_deploy = sum(p.numel() for p in model.parameters())
    fc3 = _fc3_times(model, args.batch, args.repeats)
    result = {
        "model": "repmlpnet_t224",
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "train_form_s": train_s,
        "merged_s": deploy_s,
        "speedup": train_s / deploy_s,
        "params_train_form": n_train,
        "params_merged": n_deploy,
        "max_abs_output_difference": max_diff,
        "fc3_per_stage": fc3,
    }
    print(f"RepMLPNet-T224, batch {args.batch}, {result['threads']} threads, best of {args.repeats}")
    print(f"  training form (FC + conv branches + BN): {train_s * 1e3:8.1f} ms  {n_train / 1e6:.2f}M params")
    print(f"  after locality_injection():              {deploy_s * 1e3:8.1f} ms  {n_deploy / 1e6:.2f}M params")
    print(f"  speed-up {result['speedup']:.2f}x, max |output difference| {max_diff:.2e}")
    print("  partition FC per stage: grouped 1x1 conv2d (authors) vs batched matmul (neurodec)")
    for row in fc3:
        ratio = row["conv2d_s"] / row["matmul_s"]
        print(f"    stage {row['stage']}: {row['conv2d_s'] * 1e3:8.1f} ms vs {row['matmul_s'] * 1e3:7.1f} ms ({ratio:.1f}x)")
    write_json_atomic(Path(__file__).with_suffix(".json"), result)


if __name__ == "__main__":
    main()
