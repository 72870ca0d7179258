"""Masked NSD beta loading: our HDF5/NIfTI readers vs nibabel full decode + mask.

Generates (once, cached under benchmarks/_data/nsd_bench/) one session at the
real subj01 1.8 mm shape, 81 x 104 x 83 voxels x 750 trials int16, as NSD
ships it: ``betas_session01.nii.gz`` and the HDF5 twin (n_trials, Z, Y, X)
chunked one voxel time course per chunk; plus an nsdgeneral-sized mask (~15%
of the volume, smooth blobs inside an ellipsoidal "brain").

Each method runs in a fresh subprocess (warm page cache: a first untimed
pass reads the files) and reports wall and CPU time of an untraced pass (CPU
time is the fairer ratio on a shared machine), then tracemalloc peak and the
rise of peak RSS of a traced pass, both relative to the size of the returned
float32 array.

    python benchmarks/data/bench_nsd_masked_load.py [--sessions 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # this checkout's neurodec, not an installed one
CACHE = HERE.parent / "_data" / "nsd_bench"
SHAPE, N_TRIALS = (81, 104, 83), 750
SESSION = "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session{:02d}.{}"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_inputs() -> None:
    """Write the benchmark session (NIfTI + HDF5) and mask, unless cached."""
    import h5py
    import nibabel as nib
    from scipy import ndimage

    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    mask_path = CACHE / "mask.npy"
    if not mask_path.is_file():
        grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij"))
        brain = (grid**2).sum(axis=0) < 0.9
        field = ndimage.gaussian_filter(rng.normal(size=SHAPE), 3) + 0.6 * grid[1]  # posterior-weighted
        mask = brain & (field > np.quantile(field[brain], 1 - 0.15 * brain.size / brain.sum()))
        np.save(mask_path, mask)
    nii = CACHE / SESSION.format(1, "nii.gz")
    h5 = CACHE / SESSION.format(1, "hdf5")
    if nii.is_file() and h5.is_file():
        return
    brain = np.load(mask_path) | ndimage.binary_dilation(np.load(mask_path), iterations=6)
    data = np.zeros((*SHAPE, N_TRIALS), dtype=np.int16)
    for k in range(SHAPE[2]):  # slab by slab: no float64 copy of the volume
        inside = brain[:, :, k]
        data[inside, k, :] = np.clip(rng.normal(0, 1.5, (inside.sum(), N_TRIALS)) * 300, -32000, 32000)
    nii.parent.mkdir(parents=True, exist_ok=True)
    print("writing", nii, flush=True)
    nib.Nifti1Image(data, np.diag([1.8, 1.8, 1.8, 1])).to_filename(nii)
    print("writing", h5, flush=True)
    with h5py.File(h5, "w") as f:
        ds = f.create_dataset("betas", shape=(N_TRIALS, *SHAPE[::-1]), dtype=np.int16, chunks=(N_TRIALS, 1, 1, 1))
        for k in range(SHAPE[2]):
            ds[:, k] = data[:, :, k, :].T


def _method(name: str) -> np.ndarray:
    from neurodec.data.nsd_betas import read_beta_header, read_masked_betas

    mask = np.load(CACHE / "mask.npy")
    nii, h5 = CACHE / SESSION.format(1, "nii.gz"), CACHE / SESSION.format(1, "hdf5")
    if name == "nibabel_full_decode":
        import nibabel as nib

        return (np.asarray(nib.load(nii).dataobj)[mask].T / np.float32(300)).astype(np.float32)
    if name.startswith("ours_"):
        beta = read_beta_header(h5 if name == "ours_hdf5" else nii, name[5:])
        out = np.empty((beta.n_trials, int(mask.sum())), dtype=np.float32)
        read_masked_betas(beta, mask, out)
        return out
    import h5py

    with h5py.File(h5, "r") as f:
        ds = f["betas"]
        if name == "hdf5_bounding_box":
            idx = np.argwhere(mask)
            lo, hi = idx.min(0), idx.max(0) + 1
            box = ds[:, lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]]
            return box[:, mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].T].astype(np.float32) / 300
        if name == "hdf5_per_voxel_1pct":  # one read per voxel time course, on 1% of the voxels
            idx = np.argwhere(mask)[::100]
            return np.stack([ds[:, k, j, i] for i, j, k in idx], axis=1).astype(np.float32) / 300
    raise ValueError(name)


def _measure(call, *, timed_pass: bool) -> dict:
    """Wall/CPU time and memory of ``call()`` (which returns an array) after a warm-up call.

    With ``timed_pass`` the times come from a pass without tracemalloc (its
    per-allocation hooks would tax methods that allocate many small objects)
    and a second pass measures memory; otherwise one traced pass gives both.
    """
    rss0 = _rss_bytes()
    if timed_pass:
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    out = call()
    if not timed_pass:
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": seconds, "cpu_seconds": cpu, "out_bytes": out.nbytes, "tracemalloc_peak": peak,
            "rss_rise": max(0, maxrss - rss0), "checksum": float(np.asarray(out[:, :50], np.float64).sum())}


def run_one(name: str) -> dict:
    _method(name)  # warm the page cache
    return {"method": name, **_measure(lambda: _method(name), timed_pass=True)}


def run_streaming(n_sessions: int) -> dict:
    """load_nsd over n_sessions (links to the one session file) for the mask; one traced pass."""
    from neurodec.data.fixtures.nsd import make_nsd_design, write_nsd
    from neurodec.data.nsd import load_nsd

    root = CACHE / f"stream_{n_sessions}"
    if not root.is_dir():
        design = make_nsd_design(n_images=1200, n_shared=100, n_sessions=n_sessions, trials_per_session=N_TRIALS)
        write_nsd(root, design=design, images=np.zeros((1200, 1, 1, 3), np.uint8), subjects={})
        for s in range(1, n_sessions + 1):
            link = root / SESSION.format(s, "hdf5")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(CACHE / SESSION.format(1, "hdf5"))
    mask = np.load(CACHE / "mask.npy")
    load_nsd(root, 1, roi=mask, rois=[], verbose=False, sessions=[1])  # warm
    result = _measure(lambda: load_nsd(root, 1, roi=mask, rois=[], verbose=False).data, timed_pass=False)
    return {"method": f"load_nsd_{n_sessions}_sessions", **result}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--sessions", type=int, default=3, help="sessions for the streaming check")
    args = parser.parse_args()
    if args.one:
        result = run_streaming(int(args.one.split(":")[1])) if args.one.startswith("stream") else run_one(args.one)
        print(json.dumps(result))
        return
    make_inputs()
    # The headline pair runs twice, interleaved, and keeps the faster run of
    # each: the machine is shared, and load swings between runs.
    methods = ["ours_hdf5", "nibabel_full_decode", f"stream:{args.sessions}", "ours_nifti", "ours_hdf5",
               "nibabel_full_decode", "hdf5_bounding_box", "hdf5_per_voxel_1pct"]
    results: dict[str, dict] = {}
    for name in methods:
        proc = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True,
                              cwd=HERE.parents[1])
        if proc.returncode:
            sys.exit(f"{name} failed:\n{proc.stderr}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{r['method']:<26} {r['seconds']:8.2f} s wall {r['cpu_seconds']:8.2f} s cpu   "
              f"out {r['out_bytes'] / 2**20:7.1f} MiB   "
              f"tracemalloc peak {r['tracemalloc_peak'] / r['out_bytes']:.2f}x   "
              f"RSS rise {r['rss_rise'] / r['out_bytes']:.2f}x",
              flush=True)
        if name in results:
            r = {k: min(v, results[name][k]) if k.endswith("seconds") else v for k, v in r.items()}
        results[name] = r
    base, ours = results["nibabel_full_decode"], results["ours_hdf5"]
    summary = {
        "speedup_hdf5_vs_nibabel_wall": base["seconds"] / ours["seconds"],
        "speedup_hdf5_vs_nibabel_cpu": base["cpu_seconds"] / ours["cpu_seconds"],
        "speedup_nifti_stream_vs_nibabel_cpu": base["cpu_seconds"] / results["ours_nifti"]["cpu_seconds"],
        "speedup_hdf5_vs_bounding_box_cpu": results["hdf5_bounding_box"]["cpu_seconds"] / ours["cpu_seconds"],
        "per_voxel_hdf5_extrapolated_cpu_s": results["hdf5_per_voxel_1pct"]["cpu_seconds"] * 100,
        "n_voxels": int(np.load(CACHE / "mask.npy").sum()),
    }
    print(json.dumps(summary, indent=1))
    out = HERE.parent / "_out"
    out.mkdir(exist_ok=True)
    (out / "nsd_masked_load.json").write_text(json.dumps({"results": results, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
