"""Feature extraction throughput and memory: neurodec.extract_features vs a bare torch loop.

Throughput compares, on the same model, images, batch size and device:

- neurodec: ``extract_features`` with forward hooks on the backbone's default
  layers, preprocessing from uint8 images, writing every layer to a fresh
  HDF5 cache batch by batch; with the feed options given (``--num-workers``:
  DataLoader worker processes for decoding and resizing; ``--preprocess-on
  device``: the host only decodes, resizing and normalization run on the
  device as torchvision.transforms.v2 ops on uint8 tensors; ``--amp bf16``:
  bfloat16 autocast, checked against float32 on the first batch), and also
  with the defaults (one helper thread, float32) when options are given;
- bare (same preprocessing): a ``torch.no_grad()`` loop that preprocesses the
  same uint8 images with the same transform and runs the forward pass, no
  hooks, nothing stored;
- bare (tensors): the forward pass alone on images preprocessed beforehand.

Memory runs the cached extraction (stimuli read from an HDF5 file, flattened
stage maps, so features are large) in a fresh process for N and 4N stimuli
and reports the peak RSS during extraction (Linux VmHWM, reset after imports
and model building); the same without a cache (features held in memory)
shows the measurement sees growth where there is some. Linux only.

    python benchmarks/backbones/bench_extraction.py [--backbone timm/resnet18] [--device cuda]
        [--num-workers 4] [--preprocess-on device] [--amp bf16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing

from neurodec._io import write_json_atomic  # noqa: E402
from neurodec.backbones import extract_features, load  # noqa: E402
from neurodec.data import Stimuli  # noqa: E402
from neurodec.data.stimuli import HDF5Images  # noqa: E402


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def _hdf5_stimuli(folder: Path, n: int, size: int) -> Stimuli:
    import h5py

    path = folder / f"stimuli_{n}.h5"
    with h5py.File(path, "w") as handle:
        handle["images"] = _images(n, size)
    return Stimuli(list(range(n)), HDF5Images(path, "images"), name=f"bench{n}")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _bare(backbone, images: np.ndarray, batch_size: int, *, pre: list | None, amp: bool | str = False) -> float:
    import torch

    start = time.perf_counter()
    bf16 = amp == "bf16"  # the bare loops run in the precision the neurodec run under test uses
    with torch.no_grad(), torch.autocast(backbone.device.type, dtype=torch.bfloat16, enabled=bf16):
        for i, b0 in enumerate(range(0, len(images), batch_size)):
            x = pre[i] if pre is not None else backbone.preprocess.batch(images[b0 : b0 + batch_size])
            backbone.model(x.to(backbone.device))
    _sync(backbone.device)
    return time.perf_counter() - start


def _neurodec(backbone, images: np.ndarray, batch_size: int, *, num_workers: int = 0, amp: bool | str = False,
              preprocess_on: str = "host") -> float:
    stimuli = Stimuli.from_array(images)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        extract_features(backbone, stimuli, batch_size=batch_size, cache=cache, amp=amp, num_workers=num_workers,
                         preprocess_on=preprocess_on, verbose=False)
        _sync(backbone.device)
        return time.perf_counter() - start


def throughput(args: argparse.Namespace) -> dict:
    import torch

    torch.manual_seed(0)
    backbone = load(args.backbone, weights="random", device=args.device)
    images = _images(args.n, args.image_size)
    pre = [backbone.preprocess.batch(images[b0 : b0 + args.batch_size]) for b0 in range(0, args.n, args.batch_size)]
    _bare(backbone, images[: args.batch_size], args.batch_size, pre=None)  # warm-up
    amp = args.amp if args.amp == "bf16" else False
    options = args.num_workers > 0 or amp or args.preprocess_on == "device"
    times: dict[str, list[float]] = {"neurodec": [], "bare_same_preprocessing": [], "bare_tensors": []}
    if options:
        times["neurodec_defaults"] = []
    for _ in range(args.repeats):  # interleaved, best of N: the machine is shared
        times["neurodec"].append(_neurodec(backbone, images, args.batch_size, num_workers=args.num_workers, amp=amp,
                                           preprocess_on=args.preprocess_on))
        if options:
            times["neurodec_defaults"].append(_neurodec(backbone, images, args.batch_size))
        times["bare_same_preprocessing"].append(_bare(backbone, images, args.batch_size, pre=None, amp=amp))
        times["bare_tensors"].append(_bare(backbone, images, args.batch_size, pre=pre, amp=amp))
    best = {k: min(v) for k, v in times.items()}
    out = {
        "backbone": args.backbone, "device": str(backbone.device), "n_images": args.n, "batch_size": args.batch_size,
        "num_workers": args.num_workers, "preprocess_on": args.preprocess_on, "amp": amp or "float32",
        "layers": list(backbone.layers), "images_per_s": {k: args.n / t for k, t in best.items()},
        "ratio_vs_bare_same_preprocessing": best["bare_same_preprocessing"] / best["neurodec"],
        "ratio_vs_bare_tensors": best["bare_tensors"] / best["neurodec"],
    }
    if options:
        out["speedup_vs_defaults"] = best["neurodec_defaults"] / best["neurodec"]
    return out


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS counter (Linux clear_refs) so imports and model building do not count."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def _peak_rss_mib() -> float:
    return _status_mib("VmHWM")


def memory_child(n: int, cached: bool, backbone_name: str, image_size: int) -> None:
    """Extract features of n HDF5-backed stimuli in this process and print its peak RSS (MiB)."""
    backbone = load(backbone_name, weights="random", device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        stimuli = _hdf5_stimuli(Path(folder), n, image_size)
        baseline = _reset_peak_rss()
        feats = extract_features(backbone, stimuli, pooling="flatten", batch_size=16,
                                 cache=Path(folder) / "cache" if cached else None, verbose=False)
        n_floats = sum(f.n_features for f in feats.values()) * n
        peak = _peak_rss_mib()
    print(json.dumps({"peak_rss_mib": peak, "baseline_rss_mib": baseline, "feature_mib": n_floats * 4 / 2**20}))


def memory(args: argparse.Namespace) -> dict:
    out = {}
    for cached in (True, False):
        for n in (args.memory_n, 4 * args.memory_n):
            cmd = [sys.executable, __file__, "--memory-child", str(n), "--backbone", args.memory_backbone,
                   "--image-size", str(args.image_size)] + (["--no-cache"] if not cached else [])
            result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
            out[f"{'cached' if cached else 'in_memory'}_n{n}"] = result
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="timm/resnet18")
    parser.add_argument("--memory-backbone", default="timm/convnext_atto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=256, help="side of the uint8 source images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes for preprocessing")
    parser.add_argument("--preprocess-on", choices=["host", "device"], default="host",
                        help="device: resize and normalize uint8 tensors on the device (torchvision v2)")
    parser.add_argument("--amp", choices=["float32", "bf16"], default="float32",
                        help="bf16: bfloat16 autocast for neurodec and the bare loops alike")
    parser.add_argument("--memory-n", type=int, default=64)
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--out", default=str(HERE / "results_extraction.json"))
    args = parser.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child, not args.no_cache, args.memory_backbone, args.image_size)
        return
    results = {"throughput": throughput(args)}
    if not args.no_memory:
        results["memory"] = memory(args)
    print(json.dumps(results, indent=2))
    write_json_atomic(args.out, results)


if __name__ == "__main__":
    main()
