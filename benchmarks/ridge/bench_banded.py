"""Banded ridge: neurodec's BandedRidgeCV vs himalaya's BandedRidgeCV at equal candidate budget.

Both solvers get the same data (float32), the same candidate band weights
(``generate_band_weights``, equal to himalaya's Dirichlet draws), the same
alphas, the same 5 contiguous folds and the R^2 criterion, and run on the CPU
with the same number of BLAS/torch threads. Each solver runs in its own
subprocess: one untimed warm-up fit on a few targets, then ``--repeats``
timed fits; the medians of wall time and of process CPU time are reported
(on a machine shared with other jobs, CPU time is the steadier measure of
work; with one thread per solver it is not inflated by idle spinning). Agreement: fraction of targets choosing
the same (band weights, alpha), and the relative difference of held-out
predictions.

    python benchmarks/ridge/bench_banded.py [--n 3000 --bands 128 128 128 --targets 1000 --candidates 20]

The default shapes run in ~10 minutes on a 2-core machine shared with other
jobs; the gain over himalaya grows with ``n_train / n_features`` (see the
FLOP model in ``neurodec.ridge.solvers``).

Writes ``benchmarks/ridge/bench_banded.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def make_data(n: int, bands: list[int], n_targets: int, seed: int = 0):
    """Bands of correlated features; each target mixes the bands with its own strengths."""
    rng = np.random.default_rng(seed)
    n_all = n + n // 5  # the last sixth is held out for prediction agreement
    Xs, signal = [], np.zeros((n_all, n_targets))
    strengths = rng.dirichlet([0.5] * len(bands), n_targets).T  # (n_bands, n_targets)
    for p, s in zip(bands, strengths):
        X = rng.standard_normal((n_all, p)) @ (np.eye(p) + 0.3 * rng.standard_normal((p, p)) / np.sqrt(p))
        W = rng.standard_normal((p, n_targets)) / np.sqrt(p)
        signal += (X @ W) * np.sqrt(s)
        Xs.append(X.astype(np.float32))
    Y = (signal + rng.standard_normal(signal.shape) + 2.0).astype(np.float32)
    return [X[:n] for X in Xs], Y[:n], [X[n:] for X in Xs]


def run_solver(name: str, args: argparse.Namespace, out: Path) -> None:
    """Time one solver (in this process) and save its selections and predictions."""
    from sklearn.model_selection import KFold

    from neurodec.ridge import generate_band_weights

    Xs, Y, Xs_test = make_data(args.n, args.bands, args.targets)
    gammas = generate_band_weights(args.candidates, len(args.bands), random_state=0)
    alphas = np.logspace(-1, 4, args.alphas).astype(np.float32)
    if name == "neurodec":
        from neurodec.ridge import BandedRidgeCV

        def fit(Y_):
            return BandedRidgeCV(alphas=alphas, n_iter=gammas, cv=KFold(5), device="cpu", dtype="float32").fit(Xs, Y_)

    else:
        from himalaya.backend import set_backend
        from himalaya.ridge import BandedRidgeCV as HimalayaBandedRidgeCV
        from himalaya.scoring import r2_score

        set_backend(args.himalaya_backend, on_error="raise")

        def fit(Y_):
            params = dict(n_iter=gammas.astype(np.float32), alphas=alphas, score_func=r2_score, progress_bar=False)
            model = HimalayaBandedRidgeCV(groups="input", solver_params=params, cv=KFold(5), fit_intercept=True)
            return model.fit(Xs, Y_)

    fit(Y[:, :50])  # warm-up: imports, thread pools, allocator
    times, cpu_times = [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        model = fit(Y)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    as_numpy = (lambda a: np.asarray(a)) if name == "neurodec" else (lambda a: np.asarray(a.cpu() if hasattr(a, "cpu") else a))
    np.savez(
        out,
        times=np.array(times),
        cpu_times=np.array(cpu_times),
        deltas=as_numpy(model.deltas_),
        pred=as_numpy(model.predict(Xs_test)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="training samples")
    parser.add_argument("--bands", type=int, nargs="+", default=[128, 128, 128], help="features per band")
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--candidates", type=int, default=20, help="band-weight candidates (equal budget)")
    parser.add_argument("--alphas", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads of each solver")
    parser.add_argument("--himalaya-backend", default="numpy", choices=["numpy", "torch"])
    parser.add_argument("--solver", choices=["neurodec", "himalaya"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.solver:
        import torch

        torch.set_num_threads(args.threads)
        run_solver(args.solver, args, args.out)
        return

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "OPENBLAS_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for solver in ("neurodec", "himalaya"):
            out = Path(tmp) / f"{solver}.npz"
            cmd = [sys.executable, __file__, *sys.argv[1:], "--solver", solver, "--out", str(out)]
            print(f"running {solver} ...", flush=True)
            subprocess.run(cmd, check=True, env=env, cwd=ROOT)
            results[solver] = dict(np.load(out))
    ours, ref = results["neurodec"], results["himalaya"]
    t_ours, t_ref = float(np.median(ours["times"])), float(np.median(ref["times"]))
    c_ours, c_ref = float(np.median(ours["cpu_times"])), float(np.median(ref["cpu_times"]))
    same = np.all(np.isclose(ours["deltas"], ref["deltas"], rtol=1e-4, atol=1e-6), axis=0)
    pred_diff = np.linalg.norm(ours["pred"] - ref["pred"]) / np.linalg.norm(ref["pred"])
    report = {
        "shapes": {"n_samples": args.n, "bands": args.bands, "n_targets": args.targets,
                   "n_candidates": args.candidates, "n_alphas": args.alphas, "n_folds": 5},
        "threads": args.threads,
        "himalaya_backend": args.himalaya_backend,
        "repeats": args.repeats,
        "seconds_neurodec": [round(float(t), 3) for t in ours["times"]],
        "seconds_himalaya": [round(float(t), 3) for t in ref["times"]],
        "median_seconds_neurodec": round(t_ours, 3),
        "median_seconds_himalaya": round(t_ref, 3),
        "median_cpu_seconds_neurodec": round(c_ours, 3),
        "median_cpu_seconds_himalaya": round(c_ref, 3),
        "speedup_wall": round(t_ref / t_ours, 2),
        "speedup_cpu": round(c_ref / c_ours, 2),
        "same_selection_fraction": round(float(same.mean()), 4),
        "relative_prediction_difference": float(f"{pred_diff:.3g}"),
    }
    print(json.dumps(report, indent=2))
    (HERE / "bench_banded.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
