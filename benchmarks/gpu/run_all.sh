#!/usr/bin/env bash
# GPU tests and GPU benchmarks on a machine with one CUDA GPU, in under 10 minutes.
# Writes benchmarks/gpu/results_gpu.json and benchmarks/gpu/RESULTS_gpu.md (a RESULTS.md section).
# Exits 2 on a machine without CUDA, else 0 (failed or timed-out steps are recorded in the JSON).
# Wheels the machine lacks (himalaya, dask, ...) may be brought in .whl/ (see /work/shared/GPU.md).
# Usage: benchmarks/gpu/run_all.sh [run_all.py options, e.g. --only ridge_sources]
set -u
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

if ! command -v nvidia-smi >/dev/null 2>&1 \
    || ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "run_all.sh: no CUDA device here (nvidia-smi missing or torch.cuda.is_available() is False)." >&2
    echo "For a CPU dry run: $PY benchmarks/gpu/run_all.py --device cpu --tiny --out-dir benchmarks/_out/gpu" >&2
    exit 2
fi

if compgen -G ".whl/*.whl" >/dev/null; then
    SITE=${TMPDIR:-/tmp}/neurodec_gpu_site
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/*.whl \
        && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

nvidia-smi
timeout -k 10 570 "$PY" benchmarks/gpu/run_all.py --device cuda "$@"
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "run_all.sh: driver exited with $rc; partial results (if any) are in benchmarks/gpu/results_gpu.json" >&2
fi
exit 0
