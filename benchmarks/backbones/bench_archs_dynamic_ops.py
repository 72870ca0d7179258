"""CPU cost of neurodec's own architectures and of their plain-torch dynamic operations.

The authors run LSNet's small-kernel aggregation (SKA) with a Triton kernel and
OverLoCK's ContMix aggregation with NATTEN, both GPU-only. neurodec computes the
same sums in plain torch. This script times

1. each op as implemented (shifted slices for SKA, one gather + batched matmul for the
   neighbourhood aggregation) against the obvious alternatives (``F.unfold``
   for SKA, a Python loop over the k*k window offsets for the aggregation),
   at the shapes the models meet at 224 x 224;
2. the forward pass of the smallest variant of each architecture at 224 x 224.

Times are CPU seconds of one thread (``time.process_time``, best of several
runs), which stay comparable on a machine shared with other jobs.

Run ``python benchmarks/backbones/bench_archs_dynamic_ops.py``; results are
printed and written to ``benchmarks/backbones/bench_archs_dynamic_ops.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from neurodec._io import atomic_path
from neurodec.backbones.archs import lsnet, overlock, transxnet
from neurodec.backbones.archs._dynamic_conv import neighborhood_aggregate, small_kernel_aggregate


def _best_of(fn, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def _ska_unfold(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    groups, kk = weight.shape[1:3]
    k = int(kk**0.5)
    cols = F.unfold(x, k, padding=(k - 1) // 2).view(n, c // groups, groups, kk, h, w)
    return (cols * weight[:, None]).sum(3).view(n, c, h, w)


def _na_offset_loop(attn: torch.Tensor, value: torch.Tensor, k: int) -> torch.Tensor:
    b, g, h, w, c = value.shape
    rows = (torch.arange(h) - k // 2).clamp(0, h - k)
    cols = (torch.arange(w) - k // 2).clamp(0, w - k)
    out = torch.zeros_like(value)
    for i in range(k):
        for j in range(k):
            neighbours = value[:, :, rows + i][:, :, :, cols + j]
            out += attn[..., i * k + j, None] * neighbours
    return out


def main() -> dict[str, float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    results: dict[str, float] = {}
    with torch.no_grad():
        # LSNet-T stage 2 at 224: 128 channels, 28 x 28, 16 kernel groups, 3 x 3 kernels.
        x, weight = torch.randn(8, 128, 28, 28), torch.randn(8, 16, 9, 28, 28)
        torch.testing.assert_close(small_kernel_aggregate(x, weight), _ska_unfold(x, weight))
        results["ska_shifted_slices_s"] = _best_of(lambda: small_kernel_aggregate(x, weight))
        results["ska_unfold_s"] = _best_of(lambda: _ska_unfold(x, weight))
        # OverLoCK-XT Focus-Net stage 3 at 224: 8 heads of 16 channels, 14 x 14, 13 x 13 windows.
        attn, value = torch.randn(8, 8, 14, 14, 169).softmax(-1), torch.randn(8, 8, 14, 14, 16)
        torch.testing.assert_close(neighborhood_aggregate(attn, value, 13), _na_offset_loop(attn, value, 13))
        results["na_gather_matmul_s"] = _best_of(lambda: neighborhood_aggregate(attn, value, 13))
        results["na_offset_loop_s"] = _best_of(lambda: _na_offset_loop(attn, value, 13))

        images = torch.randn(4, 3, 224, 224)
        for builder in (lsnet.lsnet_t, transxnet.transxnet_t, overlock.overlock_xt):
            model = builder().eval()
            seconds = _best_of(lambda model=model: model(images), repeats=3)
            results[f"{builder.__name__}_images_per_cpu_s"] = len(images) / seconds
    return results


if __name__ == "__main__":
    out = main()
    for key, value in out.items():
        print(f"{key:32s} {value:10.4f}")
    path = Path(__file__).with_suffix(".json")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(out, indent=2))
