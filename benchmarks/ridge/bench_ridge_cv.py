"""Benchmark neurodec's RidgeCV against himalaya's torch RidgeCV (voxel-wise encoding).

Protocol (from the GPU-ridge issue): synthetic features with a power-law
spectrum, targets whose SNR spans two orders of magnitude; data written once
to .npy and memory-mapped; one process per solver run (subprocess) with the
same thread count; a warm-up fit on a slice of targets, then the median of
``--repeats`` full fits; peak memory (ru_maxrss of the child, or
torch.cuda.max_memory_allocated on CUDA); achieved FLOP/s against each
solver's FLOP model; accuracy gates (fraction of identical best alphas,
prediction agreement on held-out samples).

Examples
--------
python benchmarks/ridge/bench_ridge_cv.py --p 2048 512 --t 10000
python benchmarks/ridge/bench_ridge_cv.py --p 2048 --t 100000 --solvers neurodec --repeats 1
python benchmarks/ridge/bench_ridge_cv.py --device cuda --p 4096 --t 100000 --solvers neurodec --threads 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks' shared helpers

from benchmarks._split_targets import write_split_targets  # noqa: E402

N_TEST = 500
N_PRED_TARGETS = 2000  # targets whose held-out predictions are compared


def flop_model(solver: str, n: int, p: int, t: int, k: int, a: int) -> float:
    """FLOPs of one fit: neurodec's route (see neurodec.ridge._primal) or himalaya's K-fold path."""
    n_val = n / k
    n_train = n - n_val
    if solver == "himalaya":
        # per fold: Xtest @ (XtX + aI)^-1 Xtrain^T for all alphas (a n_val p n_train), then
        # one (n_val x n_train) @ (n_train x t) GEMM per alpha; refit per used alpha (~a p n t).
        return k * a * 2 * n_val * n_train * t + 2 * a * p * n * t
    if n_train < p:  # dual route
        return 2 * a * n * n_train * t + 2 * n**2 * t  # validation maps, refit maps (neurodec.ridge._dual)
    moments = a * p * p + n_val * p < a * n_val * p
    per_alpha = 2 * (a + 1) * k * p * p * t if moments else 2 * a * n * p * t
    return 4 * n * p * t + 2 * k * p * p * t + per_alpha + 4 * p * p * t


def make_data(folder: Path, n: int, p: int, t: int, seed: int = 0) -> None:
    """Write X_train, X_test, Y_train, Y_test (.npy, float32) with planted low-rank weights."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "Y_test.npy").exists():
        return
    rng = np.random.default_rng(seed)
    spectrum = np.arange(1, p + 1, dtype=np.float32) ** -0.5  # power-law feature spectrum
    rank = 64
    X = (rng.standard_normal((n + N_TEST, p), dtype=np.float32) * spectrum).astype(np.float32)
    Z = X @ (rng.standard_normal((p, rank), dtype=np.float32) / np.sqrt(p))
    snr = np.logspace(-1, 1, t).astype(np.float32)
    rng.shuffle(snr)
    np.save(folder / "X_train.npy", X[:n])
    np.save(folder / "X_test.npy", X[n:])

    def block(cols: slice) -> np.ndarray:
        signal = Z @ rng.standard_normal((rank, cols.stop - cols.start), dtype=np.float32)
        return signal + rng.standard_normal(signal.shape, dtype=np.float32) * (signal.std(0) / snr[cols])

    write_split_targets(folder, n, N_TEST, t, block, block_size=5000)


def worker(args: argparse.Namespace) -> None:
    """One solver, one process: warm-up, timed fits, results as JSON on stdout."""
    import resource

    import torch

    torch.set_num_threads(args.threads)
    folder = Path(args.data)
    X = np.load(folder / "X_train.npy")
    Y = np.load(folder / "Y_train.npy", mmap_mode="r")
    alphas = np.logspace(-1, 6, args.n_alphas)
    cuda = args.device == "cuda"

    def fit(Yfit):
        if args.worker == "himalaya":
            from himalaya.backend import set_backend
            from himalaya.ridge import RidgeCV as HimalayaRidgeCV
            from himalaya.scoring import r2_score
            from sklearn.model_selection import KFold

            backend = set_backend("torch_cuda" if cuda else args.himalaya_backend)
            model = HimalayaRidgeCV(alphas=alphas, cv=KFold(args.folds), fit_intercept=True,
                                    solver_params={"score_func": r2_score})
            model.fit(X, np.asarray(Yfit))
            return backend.to_numpy(model.best_alphas_), backend.to_numpy(model.coef_), backend.to_numpy(model.intercept_)
        from neurodec.ridge import RidgeCV

        model = RidgeCV(alphas, cv=args.folds, device=args.device, warn_alpha_edge=False).fit(X, Yfit)
        return model.best_alphas_, model.coef_, model.intercept_

    def sync():
        if cuda:
            torch.cuda.synchronize()

    fit(Y[:, :256])
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, cpu_times = [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        best, coef, intercept = fit(Y)
        sync()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    X_test = np.load(folder / "X_test.npy")
    cols = np.linspace(0, Y.shape[1] - 1, min(N_PRED_TARGETS, Y.shape[1])).astype(int)
    pred = X_test @ np.asarray(coef)[:, cols] + np.asarray(intercept)[cols]
    out = Path(args.out_prefix)
    np.save(out.with_suffix(".alphas.npy"), np.asarray(best, dtype=np.float64))
    np.save(out.with_suffix(".pred.npy"), pred)
    result = {
        "times_s": times,
        "median_s": float(np.median(times)),
        "cpu_times_s": cpu_times,  # all threads; robust to other processes' load, not to spin-waiting
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
    print("RESULT " + json.dumps(result))


def run_case(args: argparse.Namespace, p: int, t: int) -> list[dict]:
    folder = Path(args.cache) / f"n{args.n}_p{p}_t{t}"
    make_data(folder, args.n, p, t)
    rows = []
    for solver in args.solvers:
        prefix = folder / f"{solver}_{args.device}"
        cmd = [sys.executable, __file__, "--worker", solver, "--data", str(folder), "--out-prefix", str(prefix),
               "--threads", str(args.threads), "--repeats", str(args.repeats), "--n-alphas", str(args.n_alphas),
               "--folds", str(args.folds), "--device", args.device, "--himalaya-backend", args.himalaya_backend]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            raise RuntimeError(f"{solver} worker failed:\n{proc.stderr[-3000:]}")
        res = json.loads(line[0][len("RESULT "):])
        flops = flop_model(solver, args.n, p, t, args.folds, args.n_alphas)
        res.update(solver=solver, p=p, t=t, n=args.n, device=args.device, threads=args.threads,
                   model_gflop=flops / 1e9, achieved_gflops=flops / 1e9 / res["median_s"])
        if solver == "himalaya" and args.device == "cpu":
            res["backend"] = args.himalaya_backend
        rows.append(res)
        print(json.dumps(res), flush=True)
    if "neurodec" in args.solvers and "himalaya" in args.solvers:
        ours, ref = (np.load(folder / f"{s}_{args.device}.alphas.npy") for s in ("neurodec", "himalaya"))
        pred_ours, pred_ref = (np.load(folder / f"{s}_{args.device}.pred.npy") for s in ("neurodec", "himalaya"))
        Y_test = np.load(folder / "Y_test.npy", mmap_mode="r")
        cols = np.linspace(0, t - 1, min(N_PRED_TARGETS, t)).astype(int)
        gate = {
            "same_alpha_fraction": float(np.isclose(ours, ref, rtol=1e-4).mean()),
            "max_pred_diff_over_std": float((np.abs(pred_ours - pred_ref).max(0) / Y_test[:, cols].std(0)).max()),
            "speedup": rows[-1]["median_s"] / rows[-2]["median_s"],
        }
        rows.append({"p": p, "t": t, "gate": gate})
        print(json.dumps(gate), flush=True)
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The results as a markdown table (one line per solver run, gates under their case)."""
    lines = [
        "| device | p | t | solver | wall s | CPU s | peak RSS GiB | peak GPU GiB | model GFLOP | GFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    gates = []
    for r in rows:
        if "gate" in r:
            g = r["gate"]
            gates.append(
                f"- p={r['p']}, t={r['t']}: speed-up {g['speedup']:.2f}x, same best alpha on "
                f"{100 * g['same_alpha_fraction']:.2f}% of targets, max |pred diff| / std(Y) = "
                f"{g['max_pred_diff_over_std']:.1e}"
            )
            continue
        cpu = np.median(r["cpu_times_s"]) if "cpu_times_s" in r else float("nan")
        gpu = f"{r['peak_gpu_gib']:.2f}" if r.get("peak_gpu_gib") is not None else "-"
        solver = r["solver"] + (f" ({r['backend']})" if r.get("backend") else "")
        lines.append(
            f"| {r['device']} | {r['p']} | {r['t']} | {solver} | {r['median_s']:.1f} | {cpu:.1f} | "
            f"{r['peak_rss_gib']:.2f} | {gpu} | {r['model_gflop']:.0f} | {r['achieved_gflops']:.1f} |"
        )
    return "\n".join(lines + [""] + gates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=9000)
    parser.add_argument("--p", type=int, nargs="+", default=[2048, 512])
    parser.add_argument("--t", type=int, default=10000)
    parser.add_argument("--n-alphas", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--solvers", nargs="+", default=["neurodec", "himalaya"])
    parser.add_argument("--himalaya-backend", choices=["torch", "numpy"], default="torch",
                        help="himalaya's CPU backend: torch (MKL) or numpy (OpenBLAS; himalaya's default)")
    parser.add_argument("--cache", default=str(Path(os.environ.get("TMPDIR", "/tmp")) / "neurodec_ridge_bench"))
    parser.add_argument("--output", default=str(HERE / "results.json"))
    parser.add_argument("--table", action="store_true", help="print --output as a markdown table and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out-prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.table:
        print(markdown_table(json.loads(Path(args.output).read_text())))
        return
    rows = [row for p in args.p for row in run_case(args, p, args.t)]
    output = Path(args.output)
    previous = json.loads(output.read_text()) if output.exists() else []
    from neurodec._io import write_json_atomic

    write_json_atomic(output, previous + rows)


if __name__ == "__main__":
    main()
