"""Benchmark the LinearDecoder fit (voxels -> CLIP tokens) against the same fit with himalaya.

Setting of the issue: ~15,000 voxels decoded into 257 x 768 CLIP ViT-L/14
tokens (197,376 targets), one penalty per target chosen by 5-fold CV. Data
are synthetic (a 64-dimensional latent drives both voxels and tokens, plus
noise), written once to .npy and memory-mapped. One process per solver with
the same thread count; the timed fit includes the decoder's z-scoring. Peers:

- ``himalaya-kernel``: himalaya's ``KernelRidgeCV(kernel="linear")`` on the
  z-scored voxels, the same (dual) form neurodec picks when n_train < n_voxels;
- ``himalaya-ridge``: himalaya's ``RidgeCV`` (its K-fold SVD path), what a
  voxel-to-embedding decoder written with himalaya would call.

Both are run with ``score_func=r2_score`` and the same ``KFold`` splits, on
himalaya's torch backend or (``--himalaya-backend numpy``) its numpy one. Gates:
fraction of identical best alphas, held-out predictions of a sample of targets,
and the speed-up: the median over peer runs of each one's ratio to the
neurodec run next to it (list the solvers alternately, the machine's speed drifts).
``--peer-targets`` times a peer on the first targets only and scales its time
linearly to the full count (himalaya processes targets in independent batches).

Examples
--------
python benchmarks/decoding/bench_decoder_fit.py --n 1000 --solvers neurodec himalaya-kernel
python benchmarks/decoding/bench_decoder_fit.py --n 1000 --solvers neurodec himalaya-kernel neurodec himalaya-kernel
python benchmarks/decoding/bench_decoder_fit.py --n 1000 --solvers himalaya-kernel neurodec --himalaya-backend numpy
python benchmarks/decoding/bench_decoder_fit.py --n 1000 --solvers himalaya-ridge --peer-targets 16384
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # neurodec from this checkout; the benchmarks' shared helpers

from benchmarks._split_targets import write_split_targets  # noqa: E402

N_TEST = 300
N_GATE_TARGETS = 4096  # targets whose held-out predictions are compared
LATENT = 64


def make_data(folder: Path, n: int, p: int, t: int, seed: int = 0) -> None:
    """X_train/X_test (voxels) and Y_train/Y_test (flattened tokens), float32 .npy, from a shared latent."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "Y_test.npy").exists():
        return
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n + N_TEST, LATENT), dtype=np.float32)
    X = latent @ rng.standard_normal((LATENT, p), dtype=np.float32) / np.float32(np.sqrt(LATENT))
    X += 2.0 * rng.standard_normal(X.shape, dtype=np.float32)  # voxel noise: SNR 1/4
    np.save(folder / "X_train.npy", X[:n])
    np.save(folder / "X_test.npy", X[n:])

    def block(cols: slice) -> np.ndarray:
        values = latent @ rng.standard_normal((LATENT, cols.stop - cols.start), dtype=np.float32)
        return values + rng.standard_normal(values.shape, dtype=np.float32) * values.std(0)  # target noise: SNR 1

    write_split_targets(folder, n, N_TEST, t, block, block_size=8192)


def worker(args: argparse.Namespace) -> None:
    """One solver in this process: a warm-up on 256 targets, one timed fit, results as JSON on stdout."""
    import torch

    torch.set_num_threads(args.threads)
    folder = Path(args.data)
    # float32 for every solver (data written by an earlier version of make_data were float64)
    X = np.load(folder / "X_train.npy").astype(np.float32, copy=False)
    X_test = np.load(folder / "X_test.npy").astype(np.float32, copy=False)
    Y = np.load(folder / "Y_train.npy", mmap_mode="r")
    t = Y.shape[1] if not args.peer_targets or args.worker == "neurodec" else min(args.peer_targets, Y.shape[1])
    alphas = np.logspace(1, 7, args.n_alphas)
    from sklearn.model_selection import KFold

    splits = list(KFold(args.folds).split(X))

    def fit(Yfit):
        if args.worker == "neurodec":
            from neurodec.decoding import LinearDecoder

            model = LinearDecoder(alphas, cv=splits, device=args.device).fit(X, Yfit)
            return model.best_alphas_, lambda: model.predict(X_test)
        from himalaya.backend import set_backend
        from himalaya.kernel_ridge import KernelRidgeCV
        from himalaya.ridge import RidgeCV
        from himalaya.scoring import r2_score

        backend = set_backend("torch_cuda" if args.device == "cuda" else args.himalaya_backend)
        mean, scale = X.mean(0), X.std(0, ddof=1)
        Z, Z_test = (X - mean) / scale, (X_test - mean) / scale
        params = {"score_func": r2_score, "n_targets_batch": args.himalaya_batch}
        cls = KernelRidgeCV if args.worker == "himalaya-kernel" else RidgeCV
        kwargs = {"kernel": "linear"} if cls is KernelRidgeCV else {}
        model = cls(alphas=alphas, cv=splits, fit_intercept=True, solver_params=params, **kwargs)
        model.fit(Z, np.asarray(Yfit))
        return backend.to_numpy(model.best_alphas_), lambda: backend.to_numpy(model.predict(Z_test))

    fit(Y[:, :256])
    start, cpu_start = time.perf_counter(), time.process_time()
    best, predict = fit(Y[:, :t])
    if args.device == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    gate = np.arange(min(N_GATE_TARGETS, t))  # targets are exchangeable: the first ones, shared by every run
    out = Path(args.out_prefix)
    np.save(out.with_suffix(".alphas.npy"), np.asarray(best, dtype=np.float64)[gate])
    np.save(out.with_suffix(".pred.npy"), np.asarray(predict(), dtype=np.float64)[:, gate])
    scale = Y.shape[1] / t
    print("RESULT " + json.dumps({
        "wall_s": wall * scale, "cpu_s": cpu * scale, "measured_targets": t, "scaled_by": scale,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }))


def pair_ratios(rows: list[dict], peer: str, key: str) -> list[float]:
    """``peer / neurodec`` of ``key`` for each run of ``peer``, paired with the neurodec run just before it
    (or just after, for a peer run first): runs alternated in one invocation share the machine's state."""
    ratios = []
    for i, row in enumerate(rows):
        if row.get("solver") != peer:
            continue
        before = [r for r in rows[:i] if r.get("solver") == "neurodec"]
        after = [r for r in rows[i + 1 :] if r.get("solver") == "neurodec"]
        mate = before[-1] if before else (after[0] if after else None)
        if mate is not None:
            ratios.append(row[key] / mate[key])
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="training samples (NSD: ~9000; fewer on a small CPU)")
    parser.add_argument("--p", type=int, default=15000, help="voxels")
    parser.add_argument("--tokens", type=int, nargs=2, default=[257, 768], help="n_tokens dim")
    parser.add_argument("--n-alphas", type=int, default=7)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--solvers", nargs="+", default=["neurodec", "himalaya-kernel"])
    parser.add_argument("--peer-targets", type=int, default=0, help="time peers on this many targets, scaled")
    parser.add_argument("--himalaya-batch", type=int, default=16384)
    parser.add_argument("--himalaya-backend", choices=["torch", "numpy"], default="torch",
                        help="himalaya's CPU backend: torch (MKL) or numpy (OpenBLAS, as neurodec's CPU products)")
    parser.add_argument("--cache", default=str(Path(os.environ.get("TMPDIR", "/tmp")) / "neurodec_decoder_bench"))
    parser.add_argument("--output", default=str(HERE / "results_decoder_fit.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out-prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    t = args.tokens[0] * args.tokens[1]
    folder = Path(args.cache) / f"n{args.n}_p{args.p}_t{t}"
    make_data(folder, args.n, args.p, t)
    rows = []
    for solver in args.solvers:
        cmd = [sys.executable, __file__, "--worker", solver, "--data", str(folder),
               "--out-prefix", str(folder / solver), "--threads", str(args.threads), "--n-alphas", str(args.n_alphas),
               "--folds", str(args.folds), "--device", args.device, "--peer-targets", str(args.peer_targets),
               "--himalaya-batch", str(args.himalaya_batch), "--himalaya-backend", args.himalaya_backend]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            killed = " (killed by signal 9: out of memory?)" if proc.returncode == -9 else ""
            raise RuntimeError(f"{solver} worker failed, exit code {proc.returncode}{killed}:\n{proc.stderr[-3000:]}")
        row = json.loads(line[0][len("RESULT "):])
        row.update(solver=solver, n=args.n, p=args.p, t=t, n_alphas=args.n_alphas, folds=args.folds,
                   device=args.device, threads=args.threads, load_average=os.getloadavg()[0])
        if solver != "neurodec" and args.device == "cpu":
            row["backend"] = args.himalaya_backend
        rows.append(row)
        print(json.dumps(row), flush=True)
    output = Path(args.output)
    previous = json.loads(output.read_text()) if output.exists() else []
    # The gate compares each peer with this run's neurodec fits, or the last one recorded on the same data.
    runs = [r for r in previous + rows if r.get("solver") and (r["n"], r["p"], r["t"]) == (args.n, args.p, t)]
    wall = {r["solver"]: r["wall_s"] for r in runs}
    cpu = {r["solver"]: r["cpu_s"] for r in runs}
    if "neurodec" in wall and (folder / "neurodec.alphas.npy").exists():
        Y_test = np.load(folder / "Y_test.npy", mmap_mode="r")
        ours = np.load(folder / "neurodec.alphas.npy")
        pred = np.load(folder / "neurodec.pred.npy")
        for peer in dict.fromkeys(s for s in args.solvers if s != "neurodec"):
            ref, pred_ref = np.load(folder / f"{peer}.alphas.npy"), np.load(folder / f"{peer}.pred.npy")
            k = min(len(ours), len(ref))
            pairs = {key: pair_ratios(rows, peer, key) for key in ("wall_s", "cpu_s")}
            gate = {
                "peer": peer,
                "n": args.n, "p": args.p, "t": t,
                "same_alpha_fraction": float(np.isclose(ours[:k], ref[:k], rtol=1e-4).mean()),
                "max_pred_diff_over_std": float(
                    (np.abs(pred[:, :k] - pred_ref[:, :k]).max(0) / Y_test[:, :k].std(0)).max()),
                "speedup_wall": float(np.median(pairs["wall_s"])) if pairs["wall_s"] else wall[peer] / wall["neurodec"],
                "speedup_cpu": float(np.median(pairs["cpu_s"])) if pairs["cpu_s"] else cpu[peer] / cpu["neurodec"],
                "speedup_wall_pairs": pairs["wall_s"],
            }
            if args.device == "cpu":
                gate["backend"] = args.himalaya_backend
            rows.append({"gate": gate})
            print(json.dumps(gate), flush=True)
    from neurodec._io import write_json_atomic

    write_json_atomic(output, previous + rows)


if __name__ == "__main__":
    main()
