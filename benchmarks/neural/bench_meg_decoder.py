"""MEG decoder training throughput (samples/s), and the overhead of fit_network over a bare loop.

The same MEGDecoder, batches and CLIP + MSE loss are trained for one epoch by
:func:`neurodec.neural.fit_network` (seeded order, checkpoint written atomically
after the epoch, metrics log, validation off) and by a bare loop (forward,
loss, backward, AdamW step over the same batches, nothing else). Two sizes:

- "small": the test's network (32 sensors, 60 samples; 16 virtual channels,
  2 blocks of 32 channels, 64 before aggregation);
- "paper": Benchetrit et al.'s sizes (272 sensors, 181 samples = 1.5 s at
  120 Hz; 270 virtual channels, 5 blocks of 320, 2048 before aggregation).

Run: ``python benchmarks/neural/bench_meg_decoder.py [--device cpu|cuda] [--threads N]``;
writes ``benchmarks/neural/results_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from neurodec.neural import MEGDecoder, clip_mse_loss, fit_network, seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "neural"))
from meg_decoding_sim import hemisphere  # noqa: E402

SIZES = {
    "small": {"n_channels": 32, "n_times": 60, "batch": 64, "n_batches": 8,
              "model": {"n_spatial": 16, "n_freqs": 4, "n_hidden": 32, "n_blocks": 2, "n_aggregate": 64}},
    "paper": {"n_channels": 272, "n_times": 181, "batch": 32, "n_batches": 2, "model": {}},
}


def _loss(model, batch):
    x, y = batch
    clip, mse = model(x)
    return clip_mse_loss(clip, mse, y, logit_scale=model.logit_scale)


def _model(size: dict, n_outputs: int) -> MEGDecoder:
    seed_everything(0)
    return MEGDecoder(hemisphere(size["n_channels"]), size["n_times"], n_outputs, **size["model"])


def _bare_epoch(size: dict, X: torch.Tensor, Y: torch.Tensor, n_outputs: int, device: torch.device) -> float:
    """Seconds of one epoch of the bare loop: forward, loss, backward, AdamW step, in fit_network's batch order."""
    model = _model(size, n_outputs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    model.train()
    for b in range(size["n_batches"]):
        idx = order[b * size["batch"]:(b + 1) * size["batch"]]
        opt.zero_grad(set_to_none=True)
        _loss(model, (X[idx].to(device), Y[idx].to(device)))["loss"].backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _fit_epoch(size: dict, X: torch.Tensor, Y: torch.Tensor, n_outputs: int, device: torch.device) -> float:
    """Seconds of one fit_network epoch on the same data (checkpoint and metrics log written)."""
    with tempfile.TemporaryDirectory() as tmp:
        model = _model(size, n_outputs)
        start = time.perf_counter()
        fit_network(model, (X, Y), _loss, n_epochs=1, batch_size=size["batch"], drop_last=True,
                    checkpoint_dir=tmp, device=device, precision="fp32")
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


def bench(name: str, device: torch.device, n_outputs: int = 768, repeats: int = 2) -> dict:
    """Samples/s of the bare loop and of fit_network at one size (best of ``repeats``, interleaved)."""
    size = SIZES[name]
    n = size["batch"] * size["n_batches"]
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.standard_normal((n, size["n_channels"], size["n_times"]), dtype=np.float32))
    Y = torch.as_tensor(rng.standard_normal((n, n_outputs), dtype=np.float32))
    # Warm-up (allocator, kernels) on one batch, not timed.
    model = _model(size, n_outputs).to(device)
    _loss(model, (X[: size["batch"]].to(device), Y[: size["batch"]].to(device)))["loss"].backward()
    # Interleaved and best-of-repeats: the machine is shared, so single timings drift with the load.
    bare, trainer = [], []
    for _ in range(repeats):
        bare.append(_bare_epoch(size, X, Y, n_outputs, device))
        trainer.append(_fit_epoch(size, X, Y, n_outputs, device))
    bare, trainer = min(bare), min(trainer)
    n_params = sum(p.numel() for p in _model(size, n_outputs).parameters())
    return {"size": name, "n_params": n_params, "n_samples": n, "batch": size["batch"],
            "bare_samples_per_s": n / bare, "fit_network_samples_per_s": n / trainer,
            "fit_network_over_bare_time": trainer / bare, "repeats": repeats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for name in args.sizes:
        rows.append(bench(name, device, repeats=args.repeats))
        print(json.dumps(rows[-1]), flush=True)
    out = Path(__file__).with_name(f"results_{device.type}.json")
    if out.exists():  # keep the rows of sizes not re-measured in this call
        kept = [r for r in json.loads(out.read_text())["rows"] if r["size"] not in args.sizes]
        rows = kept + rows
    out.write_text(json.dumps({"device": str(device), "threads": args.threads, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
