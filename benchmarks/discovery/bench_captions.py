"""Voxel-caption throughput: BrainSCUBA projection (units/s) and PrefixCaptioner generation (captions/s).

The projection is timed against the same formula as one unbatched torch expression
(the peer: what a script would write), at equal device and dtype; generation with a
tiny random GPT-2 (2 layers, 64 wide) and a word-level tokenizer, beam 5.

    python benchmarks/discovery/bench_captions.py --units 100000 --bank 10000 --dim 512 --device cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # neurodec from this checkout; the test world


def _bare_projection(weights, bank, temperature, device):
    """The formula in one torch expression, no batching (memory grows as n_units x n_images)."""
    import torch

    w = torch.as_tensor(weights.T, device=device)
    e = torch.as_tensor(bank, device=device)
    w = w / w.norm(dim=1, keepdim=True)
    e = e / e.norm(dim=1, keepdim=True)
    d = torch.softmax(temperature * w @ e.T, dim=1) @ e
    return (d / d.norm(dim=1, keepdim=True)).cpu().numpy()


def bench_projection(n_units: int, n_bank: int, dim: int, device: str) -> dict:
    import torch

    from neurodec.discovery import project_to_image_embeddings

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((dim, n_units)).astype(np.float32)
    bank = rng.standard_normal((n_bank, dim)).astype(np.float32)
    project_to_image_embeddings(weights[:, :64], bank, device=device)  # warm-up
    start = time.perf_counter()
    ours = project_to_image_embeddings(weights, bank, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t_ours = time.perf_counter() - start
    row = {"n_units": n_units, "n_bank": n_bank, "dim": dim, "device": device, "neurodec_s": t_ours,
           "units_per_s": n_units / t_ours}
    if n_units * n_bank * 4 <= 4 * 2**30:  # the bare expression holds a (n_units, n_images) matrix
        start = time.perf_counter()
        bare = _bare_projection(weights, bank, 150.0, device)
        row["bare_torch_s"] = time.perf_counter() - start
        row["max_abs_diff"] = float(np.abs(ours - bare).max())
    return row


def bench_generation(n: int, num_beams: int) -> dict:
    from captions_simulation import concept_world, tiny_language_model

    from neurodec.discovery import PrefixCaptioner

    _, bank, _, captions = concept_world(np.random.default_rng(0), n_per_concept=30)
    decoder, tokenizer = tiny_language_model(captions)
    captioner = PrefixCaptioner(decoder, tokenizer, prefix_length=10, train_decoder=True, epochs=3,
                                random_state=0, device="cpu").fit(bank, captions)
    queries = np.resize(bank, (n, bank.shape[1]))
    captioner.generate(queries[:4], num_beams=num_beams)
    start = time.perf_counter()
    captioner.generate(queries, num_beams=num_beams, max_new_tokens=12)
    elapsed = time.perf_counter() - start
    return {"n": n, "num_beams": num_beams, "seconds": elapsed, "captions_per_s": n / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--bank", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--captions", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = {"projection": bench_projection(args.units, args.bank, args.dim, args.device),
              "generation": bench_generation(args.captions, 5)}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
