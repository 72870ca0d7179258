"""The GPU benchmark driver (benchmarks/gpu/run_all.py): step control, parsing, ratios, and a CPU dry run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu" / "run_all.sh"


def _driver():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "gpu" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shell_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_refuses_without_cuda(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    assert _driver().main(["--device", "cuda", "--out-dir", str(tmp_path)]) == 2
    assert not (tmp_path / "results_gpu.json").exists()


def test_step_timeout_kills_the_whole_process_group():
    # The child starts a grandchild (as bench_ridge_cv.py starts workers); both must die at the timeout.
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
           "print('RESULT {\"case\": \"a\", \"seconds\": 1.0}', flush=True); time.sleep(60)"
    start = time.perf_counter()
    step = _driver().run_step("sleepy", [sys.executable, "-c", code], timeout=3)
    assert step["timed_out"] and step["rc"] is None
    assert time.perf_counter() - start < 30
    assert _driver().parse_results(step["stdout"]) == [{"case": "a", "seconds": 1.0}]  # partial output kept


def test_parse_pytest_counts_and_failures():
    out = "FAILED tests/ridge/test_gpu.py::test_cuda_matches_cpu[5-dual] - AssertionError\n" \
          "9 passed, 2 failed, 1 skipped in 12.3s\n"
    parsed = _driver().parse_pytest(out)
    assert parsed["counts"] == {"passed": 9, "failed": 2, "skipped": 1}
    assert parsed["failed"] == ["tests/ridge/test_gpu.py::test_cuda_matches_cpu[5-dual]"]


def test_summary_ratios_and_markdown():
    drv = _driver()
    results = {
        "started": "now", "device": "cuda", "profile_name": "gpu", "profile": drv.PROFILES["gpu"],
        "env": {"gemm_fp32_tflops": 40.0, "device_name": "GPU", "torch": "x", "cuda": "y"},
        "steps": [
            {"name": "ridge_sources", "ok": True, "seconds": 1, "results": [
                {"case": "device", "seconds": 2.0, "tflops": 20.0},
                {"case": "host_tensor", "seconds": 3.0, "tflops": 10.0},
                {"case": "himalaya_device", "seconds": 9.0}]},
            {"name": "ridge_memmap", "ok": True, "seconds": 1, "results": [
                {"solver": "neurodec", "median_s": 6.0}, {"solver": "himalaya", "median_s": 12.0},
                {"p": 1, "t": 1, "gate": {}}]},
            {"name": "memmap_terms", "ok": True, "seconds": 1, "results": [
                {"case": "memmap_read", "seconds": 5.0}, {"case": "memmap_data_on_device", "seconds": 4.0}]},
            {"name": "encoding", "skipped": "himalaya is not installed"},
            {"name": "decoder_fit", "ok": True, "seconds": 1, "results": [
                {"solver": "neurodec", "wall_s": 2.0}, {"solver": "himalaya-kernel", "wall_s": 7.0},
                {"gate": {"speedup_wall": 3.5, "same_alpha_fraction": 1.0}}]},
        ],
    }
    summary = drv.summarize(results)
    assert summary == pytest.approx({
        "ridge_device_speedup_vs_himalaya": 4.5, "ridge_host_tensor_speedup_vs_himalaya": 3.0,
        "ridge_device_fraction_of_gemm_rate": 0.5, "memmap_speedup_vs_himalaya": 2.0,
        "memmap_wall_over_max_read_compute": 1.2, "decoder_fit_speedup_vs_himalaya": 3.5,
        "decoder_fit_same_alpha_fraction": 1.0,
    })
    results["summary"] = summary
    text = drv.markdown(results)
    assert "| ridge_host_tensor_speedup_vs_himalaya | 3 | >= 3 |" in text
    assert "| encoding | skipped: himalaya is not installed |" in text
    assert "| decoder_fit_speedup_vs_himalaya | 3.5 | >= 3 |" in text
    results["steps"][-2] = {"name": "encoding", "ok": True, "seconds": 1,
                            "results": {"speedup_vs_himalaya": 2.5, "fit_score_over_bare_ridge": 1.1}}
    summary = drv.summarize(results)
    assert summary["encoding_speedup_vs_himalaya"] == 2.5 and summary["encoding_fit_score_over_bare_ridge"] == 1.1
    assert "| encoding_fit_score_over_bare_ridge | 1.1 | <= 1.2 |" in drv.markdown({**results, "summary": summary})


@pytest.mark.slow
def test_cpu_dry_run_writes_results(tmp_path):
    """Every benchmark step at toy size on CPU (~70 s on 2 shared cores), through the real scripts."""
    out, work = tmp_path / "out", tmp_path / "work"
    steps = ["decoder_fit", "ridge_sources", "ridge_memmap", "memmap_terms", "encoding", "extraction",
             "extraction_device"]
    if importlib.util.find_spec("himalaya") is None:
        steps.remove("encoding")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/run_all.py"), "--device", "cpu", "--tiny",
                           "--out-dir", str(out), "--work-dir", str(work), "--only", *steps],
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results_gpu.json").read_text())
    status = {s["name"]: (s.get("ok"), s.get("stderr_tail", "")[-500:]) for s in results["steps"]}
    assert [s["name"] for s in results["steps"]] == steps
    assert all(ok for ok, _ in status.values()), status
    ridge = {r["case"]: r for r in results["steps"][1]["results"]}
    # Numpy in, numpy out; torch in, torch out; every source picks the same alphas.
    assert ridge["numpy"]["out_type"] == "numpy" and ridge["device"]["out_type"] == "torch"
    assert all(ridge[c]["same_alpha_as_device"] == 1.0 for c in ("device", "host_tensor", "numpy"))
    assert {"memmap_wall_over_max_read_compute", "extraction_ratio_vs_bare_tensors",
            "extraction_device_speedup_vs_host_preprocessing"} <= results["summary"].keys()
    if "encoding" in steps:  # himalaya is installed: the decoder fit was compared with it
        assert results["summary"]["encoding_fit_score_over_bare_ridge"] > 0
        assert results["summary"]["decoder_fit_same_alpha_fraction"] == 1.0
        assert results["summary"]["decoder_fit_speedup_vs_himalaya"] > 0
    assert "| step | status | seconds |" in (out / "RESULTS_gpu.md").read_text()
