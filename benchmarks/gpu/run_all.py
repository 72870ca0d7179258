"""Run the GPU tests and every GPU benchmark under one time budget; write one JSON and a RESULTS section.

Called by ``benchmarks/gpu/run_all.sh`` on a machine with one CUDA GPU. Each
step runs in its own process group with its own timeout, the budget left
caps every later step, and the results file is rewritten after every step,
so a run cut short still returns what it measured. A failed step is
recorded (exit status, the tail of its output) and the run goes on; the
driver exits 0 whenever it could write its results.

``--device cpu --tiny`` runs every step at toy size on CPU (the GPU tests are
only collected): the dry run that the test suite uses to check this driver.

Steps: ``env`` (versions, ``nvidia-smi``, a float32 GEMM rate as the
machine's practical peak), ``pytest_gpu``, ``decoder_fit``
(``benchmarks/decoding/bench_decoder_fit.py``: the decoding issue's
voxels -> CLIP-token fit against himalaya's ``KernelRidgeCV`` on its
torch_cuda backend, run alternately twice), ``ridge_sources`` (device /
host-tensor / numpy targets and himalaya, see ``bench_ridge_sources.py``),
``ridge_memmap`` (``benchmarks/ridge/bench_ridge_cv.py`` from a memmap),
``memmap_terms`` (read time and device-resident fit of the same data),
``encoding`` (``benchmarks/encoding/bench_encoding.py``), ``extraction``
(``benchmarks/backbones/bench_extraction.py``), ``extraction_device`` (the
same with ``--preprocess-on device``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from neurodec._io import write_json_atomic  # noqa: E402

__all__ = ["PROFILES", "markdown", "parse_pytest", "parse_results", "run_step", "summarize"]

# Sizes per profile. "gpu": the NSD whole-brain shape of the GPU issue for
# in-memory targets, 50k memmap targets (the file is written on the run's own
# disk first) and the encoding and extraction settings.
PROFILES = {
    "gpu": {
        "budget_s": 550, "threads": 16,
        "ridge": {"n": 9000, "p": 2048, "t": 200000, "n_alphas": 10, "folds": 5},
        "memmap": {"n": 9000, "p": 2048, "t": 50000, "n_alphas": 10, "folds": 5},
        "encoding": {"train": 4000, "features": 1024, "units": 20000},
        # The CPU record's setting (benchmarks/decoding/results_decoder_fit.json): 197,376 token targets.
        "decoder": {"n": 1000, "p": 15000, "tokens": [257, 768], "n_alphas": 7, "folds": 5},
        "extraction": {"backbone": "timm/resnet50", "n": 512, "batch_size": 64, "image_size": 256, "repeats": 2,
                       "num_workers": 8, "amp": "bf16"},
        # Caps per step, summing to the budget, so every step gets its turn within the 10-minute limit.
        "timeouts": {"pytest_gpu": 100, "decoder_fit": 100, "ridge_sources": 100, "ridge_memmap": 80,
                     "memmap_terms": 30, "encoding": 50, "extraction": 45, "extraction_device": 45},
        "gemm_size": 8192,
    },
    "tiny": {
        "budget_s": 330, "threads": 1,
        "ridge": {"n": 120, "p": 16, "t": 64, "n_alphas": 4, "folds": 3},
        "memmap": {"n": 120, "p": 16, "t": 100, "n_alphas": 4, "folds": 3},
        "encoding": {"train": 60, "features": 8, "units": 20},
        "decoder": {"n": 60, "p": 80, "tokens": [4, 8], "n_alphas": 3, "folds": 3},
        # bf16 convolutions on a CPU without bf16 units are emulated (minutes for 8 images): float32 here
        "extraction": {"backbone": "timm/resnet18", "n": 8, "batch_size": 4, "image_size": 64, "repeats": 1,
                       "num_workers": 2, "amp": "float32"},
        "timeouts": {"pytest_gpu": 60, "decoder_fit": 90, "ridge_sources": 60, "ridge_memmap": 60,
                     "memmap_terms": 40, "encoding": 60, "extraction": 60, "extraction_device": 60},
        "gemm_size": 256,
    },
}
_RESERVE_S = 5  # left for writing the results after the last step


def run_step(name: str, cmd: list[str], timeout: float, *, env: dict | None = None) -> dict:
    """Run ``cmd`` in its own process group; kill the whole group at ``timeout`` seconds.

    Returns
    -------
    step : dict
        name, cmd, rc (None when killed), timed_out, seconds, stdout (all of
        it, also when killed) and the last 3000 characters of stderr.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=env, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)  # the benchmarks start workers of their own
        out, err = proc.communicate()
    return {"name": name, "cmd": cmd, "rc": None if timed_out else proc.returncode, "timed_out": timed_out,
            "seconds": time.perf_counter() - start, "stdout": out, "stderr_tail": err[-3000:]}


def parse_results(stdout: str) -> list[dict]:
    """The ``RESULT {json}`` lines a benchmark printed, in order."""
    return [json.loads(line[len("RESULT "):]) for line in stdout.splitlines() if line.startswith("RESULT ")]


def parse_pytest(stdout: str) -> dict:
    """Counts of the last pytest summary line and the ids of failed tests."""
    counts = {}
    summary = [ln for ln in stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped|error|deselected|tests? coll)", ln)]
    if summary:
        counts = {word.rstrip("s"): int(num) for num, word in re.findall(r"(\d+) ([a-z]+)", summary[-1])}
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", stdout, flags=re.M)
    return {"counts": counts, "failed": failed}


def _env(device: str, gemm_size: int) -> dict:
    """Versions, nvidia-smi and the float32 GEMM rate torch reaches on ``device`` (TFLOP/s)."""
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "device": device, "hostname": platform.node(), "cpu_count": os.cpu_count()}
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
        info["nvidia_smi"] = smi.stdout
    dev = torch.device(device)
    if dev.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(dev)
        info["cudnn"] = torch.backends.cudnn.version()
    a = torch.randn(gemm_size, gemm_size, device=dev)
    b = torch.randn(gemm_size, gemm_size, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    a @ b
    sync()
    start = time.perf_counter()
    for _ in range(3):
        a @ b
    sync()
    info["gemm_fp32_tflops"] = 3 * 2 * gemm_size**3 / (time.perf_counter() - start) / 1e12
    del a, b
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return info


def _steps(args: argparse.Namespace, prof: dict, work: Path, have_himalaya: bool) -> list[tuple[str, list[str]]]:
    py, dev, th = sys.executable, args.device, str(prof["threads"])
    r, m, e, x, d = prof["ridge"], prof["memmap"], prof["encoding"], prof["extraction"], prof["decoder"]
    cache = work / "cache"
    pytest = [py, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "--continue-on-collection-errors"]
    pytest += ["--co", "tests/ridge/test_gpu.py"] if args.tiny else ["tests"]
    solvers = ["neurodec", "himalaya"] if have_himalaya else ["neurodec"]
    npy = cache / f"n{m['n']}_p{m['p']}_t{m['t']}"
    # Alternated twice (the speed-up is the median of the pairs), once in a dry run.
    decoders = ["neurodec", "himalaya-kernel"] * (1 if args.tiny else 2) if have_himalaya else ["neurodec"]
    return [
        ("pytest_gpu", pytest),
        # Early: the only goal of an open issue that needs a GPU to be measured.
        ("decoder_fit", [py, str(ROOT / "benchmarks/decoding/bench_decoder_fit.py"), "--device", dev, "--threads", th,
                         "--n", str(d["n"]), "--p", str(d["p"]), "--tokens", *map(str, d["tokens"]),
                         "--n-alphas", str(d["n_alphas"]), "--folds", str(d["folds"]), "--solvers", *decoders,
                         "--cache", str(cache / "decoder"), "--output", str(work / "decoder_fit.json")]),
        ("ridge_sources", [py, str(HERE / "bench_ridge_sources.py"), "--device", dev, "--threads", th,
                           "--n", str(r["n"]), "--p", str(r["p"]), "--t", str(r["t"]),
                           "--n-alphas", str(r["n_alphas"]), "--folds", str(r["folds"])]),
        ("ridge_memmap", [py, str(ROOT / "benchmarks/ridge/bench_ridge_cv.py"), "--device", dev, "--threads", th,
                          "--n", str(m["n"]), "--p", str(m["p"]), "--t", str(m["t"]), "--repeats", "1",
                          "--n-alphas", str(m["n_alphas"]), "--folds", str(m["folds"]), "--solvers", *solvers,
                          "--cache", str(cache), "--output", str(work / "ridge_memmap.json")]),
        ("memmap_terms", [py, str(HERE / "bench_ridge_sources.py"), "--device", dev, "--threads", th,
                          "--n-alphas", str(m["n_alphas"]), "--folds", str(m["folds"]), "--from-npy", str(npy)]),
        ("encoding", [py, str(ROOT / "benchmarks/encoding/bench_encoding.py"), "--device", dev,
                      "--train", str(e["train"]), "--features", str(e["features"]), "--units", str(e["units"]),
                      "--out", str(work / "encoding.json")]),
        ("extraction", [py, str(ROOT / "benchmarks/backbones/bench_extraction.py"), "--device", dev,
                        "--backbone", x["backbone"], "--n", str(x["n"]), "--batch-size", str(x["batch_size"]),
                        "--image-size", str(x["image_size"]), "--repeats", str(x["repeats"]), "--no-memory",
                        "--num-workers", str(x["num_workers"]), "--amp", x["amp"],
                        "--out", str(work / "extraction.json")]),
        # The same with resizing and normalization on the device (torchvision v2 on uint8 tensors).
        ("extraction_device", [py, str(ROOT / "benchmarks/backbones/bench_extraction.py"), "--device", dev,
                               "--backbone", x["backbone"], "--n", str(x["n"]), "--batch-size", str(x["batch_size"]),
                               "--image-size", str(x["image_size"]), "--repeats", str(x["repeats"]), "--no-memory",
                               "--num-workers", str(x["num_workers"]), "--amp", x["amp"], "--preprocess-on", "device",
                               "--out", str(work / "extraction_device.json")]),
    ]


_FILES = {"decoder_fit": "decoder_fit.json", "ridge_memmap": "ridge_memmap.json", "encoding": "encoding.json",
          "extraction": "extraction.json", "extraction_device": "extraction_device.json"}


def _attach(step: dict, work: Path) -> None:
    """Parse a finished step's own output into ``step["results"]``."""
    name, files = step["name"], _FILES
    if name == "pytest_gpu":
        step["results"] = parse_pytest(step["stdout"])
    elif name in files and (work / files[name]).exists() and step["rc"] == 0:
        step["results"] = json.loads((work / files[name]).read_text())
    else:
        step["results"] = parse_results(step["stdout"])
    step["ok"] = step["rc"] == 0
    step["stdout_tail"] = step.pop("stdout")[-3000:]


def summarize(results: dict) -> dict:
    """Ratios against the issue's goals from the steps' results (missing steps give None)."""
    steps = {s["name"]: s for s in results["steps"]}

    def rows(name):
        res = steps.get(name, {}).get("results")
        return res if isinstance(res, list) else []

    ridge = {r["case"]: r for r in rows("ridge_sources") if "seconds" in r}
    him = ridge.get("himalaya_device", {}).get("seconds")
    gemm = results.get("env", {}).get("gemm_fp32_tflops")
    out: dict = {}
    for case in ("device", "host_tensor", "numpy"):
        if case in ridge and him:
            out[f"ridge_{case}_speedup_vs_himalaya"] = him / ridge[case]["seconds"]
    if "device" in ridge and gemm:
        out["ridge_device_fraction_of_gemm_rate"] = ridge["device"]["tflops"] / gemm
    mm = {r["solver"]: r for r in rows("ridge_memmap") if "solver" in r}
    terms = {r["case"]: r for r in rows("memmap_terms") if "seconds" in r}
    if "neurodec" in mm:
        wall = mm["neurodec"]["median_s"]
        if "himalaya" in mm:
            out["memmap_speedup_vs_himalaya"] = mm["himalaya"]["median_s"] / wall
        if {"memmap_read", "memmap_data_on_device"} <= terms.keys():
            bound = max(terms["memmap_read"]["seconds"], terms["memmap_data_on_device"]["seconds"])
            out["memmap_wall_over_max_read_compute"] = wall / bound
    gates = [r["gate"] for r in rows("decoder_fit") if "gate" in r]
    if gates:
        out["decoder_fit_speedup_vs_himalaya"] = gates[-1]["speedup_wall"]
        out["decoder_fit_same_alpha_fraction"] = gates[-1]["same_alpha_fraction"]
    enc = steps.get("encoding", {}).get("results")
    if isinstance(enc, dict) and "speedup_vs_himalaya" in enc:
        out["encoding_speedup_vs_himalaya"] = enc["speedup_vs_himalaya"]
    if isinstance(enc, dict) and "fit_score_over_bare_ridge" in enc:
        out["encoding_fit_score_over_bare_ridge"] = enc["fit_score_over_bare_ridge"]
    ext = steps.get("extraction", {}).get("results")
    if isinstance(ext, dict) and "throughput" in ext:
        out["extraction_ratio_vs_bare_tensors"] = ext["throughput"]["ratio_vs_bare_tensors"]
        out["extraction_ratio_vs_bare_same_preprocessing"] = ext["throughput"]["ratio_vs_bare_same_preprocessing"]
        if "speedup_vs_defaults" in ext["throughput"]:
            out["extraction_speedup_of_feed_options"] = ext["throughput"]["speedup_vs_defaults"]
    dev = steps.get("extraction_device", {}).get("results")
    if isinstance(dev, dict) and "throughput" in dev:
        out["extraction_device_ratio_vs_bare_tensors"] = dev["throughput"]["ratio_vs_bare_tensors"]
        if isinstance(ext, dict) and "throughput" in ext:  # same workers and precision, preprocessing moved
            out["extraction_device_speedup_vs_host_preprocessing"] = (
                dev["throughput"]["images_per_s"]["neurodec"] / ext["throughput"]["images_per_s"]["neurodec"])
    return out


_GOALS = {
    "decoder_fit_speedup_vs_himalaya": ">= 3",
    "decoder_fit_same_alpha_fraction": "1 (the same fit)",
    "ridge_host_tensor_speedup_vs_himalaya": ">= 3",
    "ridge_device_fraction_of_gemm_rate": ">= 0.5 (of torch's own FP32 GEMM rate)",
    "memmap_wall_over_max_read_compute": "<= 1.2",
    "encoding_speedup_vs_himalaya": ">= 2",
    "encoding_fit_score_over_bare_ridge": "<= 1.2",
    "extraction_ratio_vs_bare_tensors": ">= 0.9",
    "extraction_device_ratio_vs_bare_tensors": ">= 0.9",
}


def markdown(results: dict) -> str:
    """The RESULTS.md section: setting, ratio table with the goals, step status."""
    env, prof = results.get("env", {}), results["profile"]
    r, m = prof["ridge"], prof["memmap"]
    lines = [
        f"### GPU run {results['started']} ({env.get('device_name', results['device'])}, torch {env.get('torch')}, "
        f"CUDA {env.get('cuda')})",
        "",
        f"Profile `{results['profile_name']}`. Ridge: n={r['n']}, p={r['p']}, t={r['t']}, {r['n_alphas']} alphas, "
        f"{r['folds']} folds; memmap: t={m['t']}; decoder {prof['decoder']}; encoding {prof['encoding']}; "
        f"extraction {prof['extraction']}. "
        f"Float32 GEMM rate on this device: {env.get('gemm_fp32_tflops', float('nan')):.1f} TFLOP/s.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
    ]
    for key, value in results["summary"].items():
        lines.append(f"| {key} | {value:.3g} | {_GOALS.get(key, '')} |")
    lines += ["", "| step | status | seconds |", "|---|---|---|"]
    for s in results["steps"]:
        status = "ok" if s.get("ok") else ("skipped: " + s["skipped"] if "skipped" in s else
                                           "timed out" if s.get("timed_out") else f"failed (rc {s.get('rc')})")
        lines.append(f"| {s['name']} | {status} | {s.get('seconds', 0):.1f} |")
    tests = next((s for s in results["steps"] if s["name"] == "pytest_gpu" and "results" in s), None)
    if tests:
        lines += ["", f"GPU tests: {tests['results']['counts']}; failed: {tests['results']['failed'] or 'none'}"]
    return "\n".join(lines) + "\n"


def _write(results: dict, out_dir: Path) -> None:
    results["summary"] = summarize(results)
    write_json_atomic(out_dir / "results_gpu.json", results)
    (out_dir / "RESULTS_gpu.md").write_text(markdown(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="toy sizes, GPU tests only collected (dry run)")
    parser.add_argument("--out-dir", default=str(HERE), help="where results_gpu.json and RESULTS_gpu.md go")
    parser.add_argument("--work-dir", default=str(ROOT / "benchmarks" / "_out" / "gpu"),
                        help="scratch: the memmap cache and each benchmark's own JSON (git-ignored)")
    parser.add_argument("--budget-s", type=float, default=None, help="total seconds (default from the profile)")
    parser.add_argument("--only", nargs="+", default=None, help="run only these steps")
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("run_all: no CUDA device is available (torch.cuda.is_available() is False); "
              "use --device cpu --tiny for a dry run.", file=sys.stderr)
        return 2
    name = "tiny" if args.tiny else "gpu"
    prof = PROFILES[name]
    deadline = time.perf_counter() + (args.budget_s or prof["budget_s"])
    out_dir, work = Path(args.out_dir), Path(args.work_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    for stale in _FILES.values():
        (work / stale).unlink(missing_ok=True)
    results = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": args.device,
               "profile_name": name, "profile": prof, "steps": []}
    try:
        results["env"] = _env(args.device, prof["gemm_size"])
    except Exception as exc:  # recorded, not fatal: the other steps still run
        results["env"] = {"error": repr(exc)}
    print(json.dumps({k: v for k, v in results["env"].items() if k != "nvidia_smi"}), flush=True)
    import importlib.util

    have_himalaya = importlib.util.find_spec("himalaya") is not None
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(prof["threads"]))
    for step_name, cmd in _steps(args, prof, work, have_himalaya):
        if args.only and step_name not in args.only:
            continue
        left = deadline - time.perf_counter() - _RESERVE_S
        if step_name == "encoding" and not have_himalaya:
            step = {"name": step_name, "skipped": "himalaya is not installed (bench_encoding needs it)"}
        elif left < 10:
            step = {"name": step_name, "skipped": "total budget spent"}
        else:
            step = run_step(step_name, cmd, min(prof["timeouts"][step_name], left), env=env)
            _attach(step, work)
        results["steps"].append(step)
        print(f"[run_all] {step_name}: " + ("skipped" if "skipped" in step else
              f"rc={step['rc']} timed_out={step['timed_out']} {step['seconds']:.1f}s"), flush=True)
        _write(results, out_dir)
    _write(results, out_dir)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
