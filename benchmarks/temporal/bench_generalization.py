"""Benchmark GeneralizingRidge / SlidingRidge against MNE's GeneralizingEstimator / SlidingEstimator.

Problem: ``--epochs`` epochs of ``--channels`` sensors x ``--times`` time
points (default 300 x 64 x 100), a continuous target decodable in a window.
Both sides compute the same held-out scores: ``cross_val_multiscore`` of
MNE's estimator wrapping ``sklearn.linear_model.Ridge(alpha)`` and
:func:`neurodec.decoding.cross_val_time_scores` with the same alpha and the
same ``KFold`` folds; the largest score difference is reported.

Writes ``benchmarks/temporal/bench_generalization.json``.

Examples
--------
python benchmarks/temporal/bench_generalization.py
python benchmarks/temporal/bench_generalization.py --epochs 500 --channels 272 --times 200
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_data(args: argparse.Namespace):
    rng = np.random.default_rng(0)
    y = rng.standard_normal(args.epochs)
    X = rng.standard_normal((args.epochs, args.channels, args.times))
    pattern = rng.standard_normal(args.channels)
    window = slice(args.times // 3, 2 * args.times // 3)
    X[:, :, window] += 0.3 * np.outer(y, pattern)[:, :, None]
    return X, y


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def compare(kind: str, X, y, args) -> dict:
    from mne.decoding import GeneralizingEstimator, SlidingEstimator, cross_val_multiscore
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold

    from neurodec.decoding import GeneralizingRidge, SlidingRidge, cross_val_time_scores

    cv = KFold(args.folds)
    ours = (GeneralizingRidge if kind == "generalizing" else SlidingRidge)(alphas=[args.alpha], device="cpu")
    theirs = (GeneralizingEstimator if kind == "generalizing" else SlidingEstimator)(
        Ridge(alpha=args.alpha), scoring="r2", verbose=False
    )
    ours_scores, t_ours, c_ours = timed(lambda: cross_val_time_scores(ours, X, y, cv=cv))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mne_scores, t_mne, c_mne = timed(lambda: cross_val_multiscore(theirs, X, y, cv=cv))
    return {
        "seconds_neurodec": round(t_ours, 3),
        "seconds_mne": round(t_mne, 3),
        "cpu_seconds_neurodec": round(c_ours, 3),
        "cpu_seconds_mne": round(c_mne, 3),
        "speedup": round(t_mne / t_ours, 2),
        "speedup_cpu": round(c_mne / c_ours, 2),
        "max_abs_score_difference": float(np.abs(ours_scores - mne_scores).max()),
        "peak_mean_score": float(mne_scores.mean(0).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--times", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads of both sides")
    args = parser.parse_args()

    import mne
    import torch
    from threadpoolctl import threadpool_limits

    mne.set_log_level("ERROR")
    torch.set_num_threads(args.threads)
    X, y = make_data(args)
    report = {
        "shapes": {"n_epochs": args.epochs, "n_channels": args.channels, "n_times": args.times, "n_folds": args.folds},
        "threads": args.threads,
    }
    with threadpool_limits(args.threads):
        for kind in ("generalizing", "sliding"):
            report[kind] = compare(kind, X, y, args)
    print(json.dumps(report, indent=2))
    (HERE / "bench_generalization.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
