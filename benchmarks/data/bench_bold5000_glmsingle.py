"""Masked GLMsingle session loading: load_bold5000 vs nibabel full decode + mask vs nilearn.

Writes (once, cached under benchmarks/_data/bold5000_bench/) one BOLD5000-style
GLMsingle session, float32 betas of a 72 x 88 x 64 grid x 120 trials
(``CSI1_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-01.nii.gz``), an ellipsoidal
brain mask (~half the grid) and the image names, with the fixture writers.

Each method runs in a fresh subprocess after an untimed warm-up pass (warm
page cache) and reports wall time and the rise of peak RSS relative to the
size of the returned float32 array (n_trials, n_voxels).

    python benchmarks/data/bench_bold5000_glmsingle.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # this checkout's neurodec, not an installed one
CACHE = HERE.parent / "_data" / "bold5000_bench"
SHAPE, N_TRIALS = (72, 88, 64), 120
METHODS = ("neurodec_load_bold5000", "nibabel_full_decode_mask", "nilearn_apply_mask")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_inputs() -> None:
    from neurodec.data.fixtures.bold5000 import write_bold5000_glmsingle

    if (CACHE / "CSI1_imgnames.txt").is_file():
        return
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij"))
    brain = (grid**2).sum(axis=0) < 0.95
    betas = rng.standard_normal((*SHAPE, N_TRIALS), dtype=np.float32)
    betas[~brain] = 0
    print("writing", CACHE, flush=True)
    write_bold5000_glmsingle(CACHE, 1, [betas], [f"img{i % 100}.jpg" for i in range(N_TRIALS)], brain)


def _method(name: str) -> np.ndarray:
    from neurodec.data.specs import load_spec

    spec = load_spec("bold5000")
    betas = spec.path("glmsingle_betas", CACHE, subject=1, session=1)
    mask = spec.path("brain_mask", CACHE, subject=1)
    if name == "neurodec_load_bold5000":
        from neurodec.data.bold5000 import load_bold5000

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_bold5000(CACHE, 1, rois=[], verbose=False).data
    if name == "nibabel_full_decode_mask":
        import nibabel as nib

        volume = np.asarray(nib.load(betas).dataobj, dtype=np.float32)
        return volume[np.asarray(nib.load(mask).dataobj) > 0].T
    if name == "nilearn_apply_mask":
        from nilearn.masking import apply_mask

        return apply_mask(str(betas), str(mask)).astype(np.float32, copy=False)
    raise ValueError(name)


def run_one(name: str) -> dict:
    _method(name)  # warm the page cache and the imports
    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    out = _method(name)
    seconds = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "method": name,
        "seconds": seconds,
        "out_bytes": int(out.nbytes),
        "rss_rise": max(0, maxrss - rss0),
        "checksum": float(np.asarray(out[:, :50], np.float64).sum()),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(run_one(sys.argv[2])))
        return
    make_inputs()
    results = {}
    for name in METHODS:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", name], capture_output=True, text=True, cwd=HERE.parents[1]
        )
        if proc.returncode:
            sys.exit(f"{name} failed:\n{proc.stderr}")
        r = results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"{name:<26} {r['seconds']:7.2f} s   out {r['out_bytes'] / 2**20:6.1f} MiB   "
            f"peak RSS rise {r['rss_rise'] / r['out_bytes']:.2f}x the output",
            flush=True,
        )
    if len({round(r["checksum"], 3) for r in results.values()}) != 1:
        sys.exit(f"methods disagree: {[r['checksum'] for r in results.values()]}")
    ours = results["neurodec_load_bold5000"]
    summary = {
        f"{name}_over_neurodec": {
            "time": results[name]["seconds"] / ours["seconds"],
            "peak_rss_rise": results[name]["rss_rise"] / max(ours["rss_rise"], 1),
        }
        for name in METHODS[1:]
    }
    print(json.dumps(summary, indent=1))
    out = HERE.parent / "_out"
    out.mkdir(exist_ok=True)
    (out / "bold5000_glmsingle.json").write_text(json.dumps({"results": results, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
