"""RidgeCV timed from where the targets live: device tensors, host tensors, numpy, a memmap.

One process, one device. Every measurement is printed as soon as it is done,
as a line ``RESULT {json}``, so a run cut short by a timeout still reports
what it finished (``benchmarks/gpu/run_all.py`` collects these lines).

Cases (each after a warm-up fit on a slice of the targets):

* ``device``, ``host_tensor``, ``numpy``: neurodec ``RidgeCV`` on the same
  simulated data held on the device, in host torch memory, or as a numpy
  array; ``himalaya_device``: himalaya's ``RidgeCV`` (``torch_cuda`` or
  ``torch`` backend) on the device tensors, with the fraction of identical
  best alphas.
* ``--from-npy FOLDER`` (the cache of ``benchmarks/ridge/bench_ridge_cv.py``):
  the time to read ``Y_train.npy`` (a memmap) into host memory, and the fit on
  the same data once it is device-resident: the two terms of the memmap goal
  ``wall <= 1.2 * max(read, compute)``.

Achieved TFLOP/s use the solver's FLOP model (``bench_ridge_cv.flop_model``).

Example
-------
python benchmarks/gpu/bench_ridge_sources.py --device cuda --n 9000 --p 2048 --t 200000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "ridge"))

from bench_ridge_cv import flop_model  # noqa: E402

_WARMUP_TARGETS = 256


def _report(case: str, **fields) -> None:
    print("RESULT " + json.dumps({"case": case, **fields}), flush=True)


def simulate(n: int, p: int, t: int, device, seed: int = 0):
    """Features with a power-law spectrum and targets with planted weights, made on ``device``."""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    spectrum = torch.arange(1, p + 1, device=device, dtype=torch.float32) ** -0.5
    X = torch.randn(n, p, device=device, generator=g) * spectrum
    W = torch.randn(p, 64, device=device, generator=g) / p**0.5
    Y = torch.empty(n, t, device=device)
    for start in range(0, t, 20000):  # bounded temporaries on small devices
        stop = min(t, start + 20000)
        signal = X @ (W @ torch.randn(64, stop - start, device=device, generator=g))
        Y[:, start:stop] = signal + torch.randn(n, stop - start, device=device, generator=g) * signal.std(0)
    return X, Y


def _timed(fit, sync) -> tuple[float, object]:
    sync()
    start = time.perf_counter()
    out = fit()
    sync()
    return time.perf_counter() - start, out


def _neurodec(X, Y, alphas, folds: int, device: str):
    from neurodec.ridge import RidgeCV

    return RidgeCV(alphas, cv=folds, device=device, warn_alpha_edge=False).fit(X, Y)


def _himalaya(X, Y, alphas, folds: int, cuda: bool):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV
    from himalaya.scoring import r2_score
    from sklearn.model_selection import KFold

    backend = set_backend("torch_cuda" if cuda else "torch", on_error="raise")
    model = HimalayaRidgeCV(alphas=alphas, cv=KFold(folds), fit_intercept=True, solver_params={"score_func": r2_score})
    return backend.to_numpy(model.fit(X, Y).best_alphas_)


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    alphas = np.logspace(-1, 6, args.n_alphas)
    if args.from_npy:
        return _from_npy(Path(args.from_npy), alphas, args, device, sync)
    X, Y = simulate(args.n, args.p, args.t, device)
    flops = flop_model("neurodec", args.n, args.p, args.t, args.folds, args.n_alphas)
    common = {"n": args.n, "p": args.p, "t": args.t, "n_alphas": args.n_alphas, "folds": args.folds,
              "device": str(device)}
    sources = {"device": (X, Y), "host_tensor": (X.cpu(), Y.cpu())}
    sources["numpy"] = (sources["host_tensor"][0].numpy(), sources["host_tensor"][1].numpy())
    ours = None
    for case, (Xs, Ys) in sources.items():
        _neurodec(Xs, Ys[:, :_WARMUP_TARGETS], alphas, args.folds, args.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds, model = _timed(lambda: _neurodec(Xs, Ys, alphas, args.folds, args.device), sync)
        best = np.asarray(torch.as_tensor(model.best_alphas_).cpu())
        ours = best if ours is None else ours
        _report(case, seconds=seconds, tflops=flops / seconds / 1e12, same_alpha_as_device=float(
            np.isclose(best, ours, rtol=1e-6).mean()), out_type=type(model.coef_).__module__.split(".")[0],
            peak_gpu_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None, **common)
        del model
    if importlib.util.find_spec("himalaya") is None:
        _report("himalaya_device", error="himalaya is not installed", **common)
        return
    _himalaya(X, Y[:, :_WARMUP_TARGETS], alphas, args.folds, cuda)
    seconds, best = _timed(lambda: _himalaya(X, Y, alphas, args.folds, cuda), sync)
    _report("himalaya_device", seconds=seconds, same_alpha_as_neurodec=float(np.isclose(best, ours, rtol=1e-4).mean()),
            tflops=flop_model("himalaya", args.n, args.p, args.t, args.folds, args.n_alphas) / seconds / 1e12,
            **common)


def _from_npy(folder: Path, alphas, args, device, sync) -> None:
    import torch

    X = np.load(folder / "X_train.npy")
    Y = np.load(folder / "Y_train.npy", mmap_mode="r")
    n, t = Y.shape
    common = {"n": n, "p": X.shape[1], "t": t, "n_alphas": args.n_alphas, "folds": args.folds, "device": str(device)}
    start = time.perf_counter()
    host = np.array(Y)  # page cache may hold the file: this is the read time of a warm file
    _report("memmap_read", seconds=time.perf_counter() - start, gib=host.nbytes / 2**30, **common)
    Xd, Yd = torch.from_numpy(X).to(device), torch.from_numpy(host).to(device)
    del host
    _neurodec(Xd, Yd[:, :_WARMUP_TARGETS], alphas, args.folds, args.device)
    seconds, _ = _timed(lambda: _neurodec(Xd, Yd, alphas, args.folds, args.device), sync)
    flops = flop_model("neurodec", n, X.shape[1], t, args.folds, args.n_alphas)
    _report("memmap_data_on_device", seconds=seconds, tflops=flops / seconds / 1e12, **common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=9000)
    parser.add_argument("--p", type=int, default=2048)
    parser.add_argument("--t", type=int, default=200000)
    parser.add_argument("--n-alphas", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--from-npy", default=None, help="time the memmap read and device-resident fit of this folder")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
