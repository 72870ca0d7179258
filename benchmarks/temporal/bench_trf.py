"""Benchmark TemporalReceptiveField against MNE's ReceptiveField / TimeDelayingRidge.

Problem: ``--epochs`` epochs of ``--seconds`` s at ``--sfreq`` Hz (default
10 x 30 s = 5 min at 100 Hz), ``--features`` stimulus features, ``--channels``
channels driven by random planted TRFs over 0..``--tmax`` s plus noise.

Two comparisons, both measured (nothing extrapolated):

1. One fixed alpha, fit + predict: ``TemporalReceptiveField(cv=None)`` vs
   ``ReceptiveField(estimator=alpha)`` (MNE's ``TimeDelayingRidge``), with
   predictions compared on ``valid_samples_`` ("at equal predictions").
2. Per-channel alpha by K-fold CV over epochs: ours in one fit vs MNE's
   ``ReceptiveField`` refitted for every fold and alpha (the only way it
   can search a grid) and each channel's alpha picked from its mean fold
   score; the fraction of channels that pick the same alpha is reported.

Writes ``benchmarks/temporal/bench_trf.json``.

Examples
--------
python benchmarks/temporal/bench_trf.py
python benchmarks/temporal/bench_trf.py --epochs 20 --features 64 --channels 128
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
    """Epochs (n_epochs, n_times, n_features) and responses (n_epochs, n_times, n_channels)."""
    rng = np.random.default_rng(0)
    n_times = int(args.seconds * args.sfreq)
    X = rng.standard_normal((args.epochs, n_times, args.features))
    n_delays = int(round(args.tmax * args.sfreq)) + 1
    lags = np.arange(n_delays) / args.sfreq
    peaks = rng.uniform(0.05, args.tmax - 0.05, args.channels)
    kernels = np.exp(-0.5 * ((lags[None, :] - peaks[:, None]) / 0.03) ** 2)  # (channels, delays)
    weights = rng.standard_normal((args.channels, args.features)) / np.sqrt(args.features)
    Y = np.zeros((args.epochs, n_times, args.channels))
    for k in range(n_delays):  # y_c(t) = sum_f w_cf sum_d kernel_c(d) x_f(t - d)
        Y[:, k:] += (X[:, : n_times - k] @ weights.T) * kernels[:, k]
    Y += rng.standard_normal(Y.shape) * Y.std() * 2
    return X, Y


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def single_alpha(X, Y, args) -> dict:
    from mne.decoding import ReceptiveField

    from neurodec.encoding import TemporalReceptiveField

    ours = TemporalReceptiveField(0.0, args.tmax, args.sfreq, alphas=[args.alpha], cv=None, device="cpu")
    _, fit_ours, fit_ours_cpu = timed(lambda: ours.fit(X, Y))
    pred_ours, pred_ours_t, pred_ours_cpu = timed(lambda: ours.predict(X))
    Xm, Ym = X.transpose(1, 0, 2), Y.transpose(1, 0, 2)
    rf = ReceptiveField(0.0, args.tmax, args.sfreq, estimator=args.alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, fit_mne, fit_mne_cpu = timed(lambda: rf.fit(Xm, Ym))
        pred_mne, pred_mne_t, pred_mne_cpu = timed(lambda: rf.predict(Xm))
    valid = rf.valid_samples_
    diff = np.abs(pred_ours[:, valid] - pred_mne[valid].transpose(1, 0, 2)).max()
    return {
        "seconds_fit_neurodec": round(fit_ours, 3),
        "seconds_predict_neurodec": round(pred_ours_t, 3),
        "seconds_fit_mne": round(fit_mne, 3),
        "seconds_predict_mne": round(pred_mne_t, 3),
        "cpu_seconds_neurodec": round(fit_ours_cpu + pred_ours_cpu, 3),
        "cpu_seconds_mne": round(fit_mne_cpu + pred_mne_cpu, 3),
        "speedup_fit": round(fit_mne / fit_ours, 2),
        "speedup_fit_predict": round((fit_mne + pred_mne_t) / (fit_ours + pred_ours_t), 2),
        "max_abs_prediction_difference": float(diff),
        "prediction_scale": float(np.abs(pred_mne[valid]).max()),
        "max_abs_coef_difference": float(np.abs(ours.coef_ - rf.coef_).max()),
    }


def cross_validated(X, Y, args) -> dict:
    from mne.decoding import ReceptiveField
    from sklearn.model_selection import KFold

    from neurodec.encoding import TemporalReceptiveField

    alphas = np.logspace(0, 6, args.alphas)
    cv = KFold(args.folds)
    ours = TemporalReceptiveField(0.0, args.tmax, args.sfreq, alphas=alphas, cv=cv, device="cpu", warn_alpha_edge=False)
    _, t_ours, c_ours = timed(lambda: ours.fit(X, Y))

    def mne_grid():
        scores = np.zeros((len(alphas), args.channels))
        for train, val in cv.split(X):
            for i, alpha in enumerate(alphas):
                rf = ReceptiveField(0.0, args.tmax, args.sfreq, estimator=alpha)
                rf.fit(X[train].transpose(1, 0, 2), Y[train].transpose(1, 0, 2))
                scores[i] += rf.score(X[val].transpose(1, 0, 2), Y[val].transpose(1, 0, 2))
        best = alphas[scores.argmax(0)]
        final = [ReceptiveField(0.0, args.tmax, args.sfreq, estimator=a).fit(
            X.transpose(1, 0, 2), Y.transpose(1, 0, 2)) for a in np.unique(best)]
        return best, final

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (best_mne, _), t_mne, c_mne = timed(mne_grid)
    return {
        "n_alphas": args.alphas,
        "n_folds": args.folds,
        "seconds_neurodec": round(t_ours, 3),
        "seconds_mne": round(t_mne, 3),
        "cpu_seconds_neurodec": round(c_ours, 3),
        "cpu_seconds_mne": round(c_mne, 3),
        "speedup": round(t_mne / t_ours, 2),
        "same_alpha_fraction": float(np.mean(np.isclose(best_mne, ours.best_alphas_))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each epoch")
    parser.add_argument("--sfreq", type=float, default=100.0)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--tmax", type=float, default=0.5, help="last delay (s); delays start at 0")
    parser.add_argument("--alpha", type=float, default=1e3, help="the fixed alpha of comparison 1")
    parser.add_argument("--alphas", type=int, default=5, help="grid size of comparison 2")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--skip-cv", action="store_true", help="only the fixed-alpha comparison")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads of both sides")
    args = parser.parse_args()

    import mne
    import torch
    from threadpoolctl import threadpool_limits

    mne.set_log_level("ERROR")  # no per-fit progress bars in the timings

    torch.set_num_threads(args.threads)
    X, Y = make_data(args)
    report = {
        "shapes": {
            "n_epochs": args.epochs, "n_times_per_epoch": int(args.seconds * args.sfreq), "sfreq": args.sfreq,
            "n_features": args.features, "n_channels": args.channels,
            "n_delays": int(round(args.tmax * args.sfreq)) + 1,
        },
        "threads": args.threads,
    }
    with threadpool_limits(args.threads):
        report["single_alpha"] = single_alpha(X, Y, args)
        if not args.skip_cv:
            report["cross_validated"] = cross_validated(X, Y, args)
    print(json.dumps(report, indent=2))
    (HERE / "bench_trf.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
