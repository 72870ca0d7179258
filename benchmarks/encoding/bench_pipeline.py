"""Whole encoding pipeline on a simulated single NSD-like subject, timed stage by stage.

Simulation (defaults = the realistic shape): 9,000 training images whose
responses are stored already averaged over their 3 presentations (one row per
image, ``n_repeats`` = 3, as NSD's averaged betas), 1,000 test images with 3
single trials each (NSD's shared images), 15,000 voxels, and 3 feature
"layers" of 512, 1024 and 2048 dims (independent Gaussian features). Each
voxel is driven linearly by one layer (a third each) at NSD-like noise-ceiling
SNR (ncsnr uniform in [0.1, 0.6] single-trial, 10 % of voxels without signal).
The layers are written with :class:`neurodec.backbones.FeatureCache` (the
format ``extract_features`` writes), so the pipeline reads real cached HDF5
features, exactly as :func:`neurodec.pipelines.run_subject` does.

Stages (one ``EncodingModel`` per layer, as the pipeline fits them):

- load: open each layer's cache file (HDF5-backed ``Features``);
- align/average: reading the split's responses and averaging repeats
  (``Responses.split`` or the encoding model's ``SplitReader``, reads made by
  the ridge solver excepted) and ``design_matrix`` (aligned rows from HDF5),
  timed inside fit and score;
- fit: ``EncodingModel.fit``; its ``RidgeCV.fit`` call is timed separately;
- score: ``EncodingModel.score`` (predict, r, R^2, noise ceiling);
- outputs: ``write_encoding_outputs`` (maps, tables, figures, report).

The reference is the bare ridge, ``neurodec.ridge.RidgeCV(alphas, cv=folds)
.fit(X, Y)`` on the same standardized in-memory features, averaged training
responses, alphas and folds. Ratio = (fit + score) / bare ridge; also reported as
1 + (fit + score - the RidgeCV.fit inside fit) / bare ridge, which does not
depend on load drifting between the two timings on a shared machine.

Run: ``PYTHONPATH=. python benchmarks/encoding/bench_pipeline.py [--voxels N] [--alphas A] ...``
(``--mode memory`` measures the peak anonymous RSS of fit and of score on
memory-mapped responses; ``--threads`` sets torch's thread count, 1 by default.)
Writes ``benchmarks/encoding/results_<mode>_<voxels>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from neurodec.data import Features, Responses

VOLUME_SHAPE = (64, 64, 48)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonPeak:
    """Peak anonymous RSS (MiB), sampled every 20 ms: memory-mapped file pages that a
    read makes resident count in ru_maxrss but are page cache, not the process's own memory."""

    def __init__(self) -> None:
        import threading

        self.peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> float:
        with open("/proc/self/status") as handle:
            line = next(row for row in handle if row.startswith("RssAnon:"))
        return int(line.split()[1]) / 1024

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> "AnonPeak":
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def simulate(args, folder: Path, *, memmap: bool = False):
    """Write the layers to a FeatureCache in ``folder``; return (keys, ids, responses)."""
    from neurodec.backbones import FeatureCache

    rng = np.random.default_rng(args.seed)
    n_stim = args.train + args.test
    ids = np.array([f"img{i:05d}" for i in range(n_stim)])
    dims = [int(d) for d in args.layers.split(",")]
    cache = FeatureCache(folder / "features")
    keys, layers = [], []
    for d in dims:
        X = rng.standard_normal((n_stim, d), dtype=np.float32)
        key = {"backbone": "sim", "weights": "random", "layer": f"layer{d}", "pooling": "avg", "reduction": "none"}
        partial = cache.open_partial(key, ids)
        partial.write(0, X)
        partial.finalize()
        keys.append(key)
        layers.append(X)
    n_vox = args.voxels
    area = np.arange(n_vox) % len(dims)
    ncsnr = rng.uniform(0.1, 0.6, n_vox)
    ncsnr[rng.random(n_vox) < 0.1] = 0.0
    # Rows: the averaged training images, then 3 single trials of each test image.
    test_rows = np.tile(np.arange(args.train, n_stim), args.test_repeats)
    rows = np.concatenate([np.arange(args.train), test_rows])
    n_rows = len(rows)
    noise_sd = np.where(np.arange(n_rows) < args.train, 1 / np.sqrt(args.train_repeats), 1.0).astype(np.float32)
    if memmap:
        data = np.lib.format.open_memmap(folder / "responses.npy", mode="w+", dtype=np.float32, shape=(n_rows, n_vox))
    else:
        data = np.empty((n_rows, n_vox), dtype=np.float32)
    block = 4096
    for start in range(0, n_vox, block):
        cols = slice(start, min(start + block, n_vox))
        out = np.empty((n_rows, cols.stop - start), dtype=np.float32)
        for a, X in enumerate(layers):
            mine = np.flatnonzero(area[cols] == a)
            W = rng.standard_normal((X.shape[1], len(mine)), dtype=np.float32)
            signal = X @ W
            signal *= (ncsnr[cols][mine] / signal.std(axis=0))
            out[:, mine] = signal[rows]
        out += noise_sd[:, None] * rng.standard_normal(out.shape, dtype=np.float32)
        data[:, cols] = out
    if memmap:
        data.flush()
        data = np.load(folder / "responses.npy", mmap_mode="r")
    split = np.r_[np.repeat("train", args.train), np.repeat("test", len(test_rows))]
    trials = pd.DataFrame({
        "stimulus_id": ids[rows], "session": 1, "run": 1,
        "repeat": np.r_[np.zeros(args.train, int), np.repeat(np.arange(args.test_repeats), args.test)],
        "split": split,
    })
    trials["n_repeats"] = np.where(split == "train", args.train_repeats, 1)
    flat = rng.choice(np.prod(VOLUME_SHAPE), n_vox, replace=False)
    i, j, k = np.unravel_index(np.sort(flat), VOLUME_SHAPE)
    units = pd.DataFrame({"i": i, "j": j, "k": k, "roi:sim": np.array(["A", "B", "C"])[area % 3], "ncsnr": ncsnr})
    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    responses = Responses(data, trials, units, subject="sim01", space="func1pt8mm",
                          info={"affine": affine, "volume_shape": VOLUME_SHAPE})
    return cache, keys, ids, responses


@contextlib.contextmanager
def timed_calls(bucket: dict, targets: list[tuple[object, str, str]]):
    """Accumulate the wall time of ``owner.name`` calls under ``bucket[label]``.

    Only outermost calls count, and "align" calls made inside a "ridge" call are
    left to the ridge (the bare ridge also reads its target blocks).
    """
    saved, depth = [], defaultdict(int)
    for owner, name, label in targets:
        original = getattr(owner, name)

        def wrapper(*a, __original=original, __label=label, **kw):
            depth[__label] += 1
            start = time.perf_counter()
            try:
                return __original(*a, **kw)
            finally:
                depth[__label] -= 1
                if depth[__label] == 0 and not (__label == "align" and depth["ridge"]):
                    bucket[__label] += time.perf_counter() - start

        saved.append((owner, name, original))
        setattr(owner, name, wrapper)
    try:
        yield bucket
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def run_pipeline(args) -> dict:
    import torch

    from neurodec.encoding import EncodingModel, write_encoding_outputs
    from neurodec.encoding import model as model_module
    from neurodec.ridge import RidgeCV

    torch.set_num_threads(args.threads)
    alphas = np.logspace(-1, 7, args.alphas)
    align_calls = [(model_module, "design_matrix"), (model_module, "repeat_averaged"), (Responses, "split")]
    with contextlib.suppress(ImportError):
        from neurodec.encoding._split_reader import SplitReader

        align_calls += [(SplitReader, "__init__"), (SplitReader, "__getitem__"), (SplitReader, "block_responses")]
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        cache, keys, ids, responses = simulate(args, folder)
        result = {"simulate_s": time.perf_counter() - t0, "stages": {}, "layers": {}}
        stages = defaultdict(float)

        start = time.perf_counter()
        features = []
        for key in keys:
            data, _ = cache.load(key, ids)
            features.append(Features(data, ids, name=f"sim/{key['layer']}"))
        stages["load"] = time.perf_counter() - start

        scores, bare_total = {}, 0.0
        params = dict(alphas=alphas, cv=args.cv, device="cpu", random_state=0, warn_alpha_edge=False)
        # Warm-up (first-call imports of scikit-learn, scipy.sparse, torch kernels), not timed.
        EncodingModel(**params).fit(features[0], responses.select_units(np.arange(8))).score(
            features[0], responses.select_units(np.arange(8)))
        for feats in features:
            align = defaultdict(float)
            # Alignment and repeat averaging, whichever way this version of the code does them.
            targets = [(owner, name, "align") for owner, name in align_calls if hasattr(owner, name)]
            targets.append((RidgeCV, "fit", "ridge"))
            with timed_calls(align, targets):
                start = time.perf_counter()
                model = EncodingModel(**params).fit(feats, responses)
                fit_s = time.perf_counter() - start
                ridge_s = align.pop("ridge")
                fit_align = align.pop("align", 0.0)
                start = time.perf_counter()
                scores[feats.name] = model.score(feats, responses)
                score_s = time.perf_counter() - start
                score_align = align.pop("align", 0.0)
            # Bare ridge: the same standardized features, training responses, alphas and folds, in memory.
            train = responses.split("train")
            X = np.asarray(feats.align(train.stimulus_ids), dtype=np.float64)
            X = (X - model.feature_mean_) / model.feature_scale_
            Y = np.asarray(train.data)
            from sklearn.model_selection import KFold

            folds = list(KFold(args.cv, shuffle=True, random_state=0).split(X))
            start = time.perf_counter()
            bare = RidgeCV(alphas, cv=folds, device="cpu", warn_alpha_edge=False).fit(X, Y)
            bare_s = time.perf_counter() - start
            agree = float(np.mean(bare.best_alphas_ == model.best_alphas_))
            del X, Y, train, bare
            stages["align/average"] += fit_align + score_align
            stages["fit (ridge inside)"] += ridge_s
            stages["fit (rest)"] += fit_s - ridge_s - fit_align
            stages["score (predict, r, R2, NC)"] += score_s - score_align
            bare_total += bare_s
            result["layers"][feats.name] = {
                "n_features": feats.n_features, "fit_s": fit_s, "ridge_in_fit_s": ridge_s, "score_s": score_s,
                "align_s": fit_align + score_align, "bare_ridge_s": bare_s, "same_alpha_as_bare": agree,
                "median_r": float(np.nanmedian(scores[feats.name].r)),
            }
            print(f"{feats.name}: {result['layers'][feats.name]}", flush=True)

        start = time.perf_counter()
        write_encoding_outputs(scores, folder / "study", atlas="sim", figures=not args.no_figures, report=True)
        stages["outputs"] = time.perf_counter() - start
        result["stages"] = dict(stages)
        result["bare_ridge_s"] = bare_total
        fit_score = sum(v["fit_s"] + v["score_s"] for v in result["layers"].values())
        result["fit_plus_score_s"] = fit_score
        result["ratio_fit_score_vs_bare"] = fit_score / bare_total
        # The ridge inside fit is the very call timed as the bare ridge, so on a machine whose load drifts
        # between the two timings the steadier estimate is 1 + (everything but that ridge) / bare ridge.
        ridge_in_fit = sum(v["ridge_in_fit_s"] for v in result["layers"].values())
        result["overhead_s"] = fit_score - ridge_in_fit
        result["ratio_by_overhead"] = 1 + result["overhead_s"] / bare_total
        result["peak_rss_mib"] = _peak_rss_mib()
        result["responses_mib"] = responses.data.nbytes / 2**20
    return result


def run_memory(args) -> dict:
    """Peak RSS of fit + score on memory-mapped responses (run once per voxel count, fresh process)."""
    import torch

    from neurodec.encoding import EncodingModel

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        cache, keys, ids, responses = simulate(args, Path(tmp), memmap=True)
        data, _ = cache.load(keys[0], ids)
        features = Features(np.asarray(data[:]), ids, name="sim")
        del data
        base = AnonPeak.now()
        model = EncodingModel(alphas=np.logspace(-1, 7, args.alphas), cv=args.cv, device="cpu", random_state=0,
                              n_targets_batch=args.batch, warn_alpha_edge=False)
        start = time.perf_counter()
        with AnonPeak() as fit_peak:
            model.fit(features, responses)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        with AnonPeak() as score_peak:
            scores = model.score(features, responses)
        score_s = time.perf_counter() - start
        return {
            "voxels": args.voxels, "rows": responses.n_trials, "n_features": features.n_features,
            "n_targets_batch": args.batch, "responses_mib": responses.data.nbytes / 2**20,
            "coef_mib": model.coef_.nbytes / 2**20, "anon_rss_before_fit_mib": base,
            "fit_peak_anon_rss_mib": fit_peak.peak, "score_peak_anon_rss_mib": score_peak.peak,
            "ru_maxrss_mib": _peak_rss_mib(), "fit_s": fit_s, "score_s": score_s,
            "median_r": float(np.nanmedian(scores.r)),
        }


def main() -> None:
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["pipeline", "memory"], default="pipeline")
    parser.add_argument("--train", type=int, default=9000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--train-repeats", type=int, default=3)
    parser.add_argument("--test-repeats", type=int, default=3)
    parser.add_argument("--voxels", type=int, default=15000)
    parser.add_argument("--layers", default="512,1024,2048")
    parser.add_argument("--alphas", type=int, default=17, help="logspace(-1, 7, ALPHAS), EncodingModel's default grid")
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--batch", type=int, default=None, help="n_targets_batch (memory mode)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (2 threads ran 11x slower than 1 on the loaded shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--tmp", default=None, help="folder for the simulated cache and responses")
    parser.add_argument("--out", default=None,
                        help="JSON file to write (default benchmarks/encoding/results_<mode>_<voxels>.json)")
    args = parser.parse_args()
    result = run_pipeline(args) if args.mode == "pipeline" else run_memory(args)
    result["args"] = vars(args)
    text = json.dumps(result, indent=2)
    print(text)
    default = Path(__file__).with_name(f"results_{args.mode}_{args.voxels}.json")
    Path(args.out or default).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
