#!/usr/bin/env bash
# The GPU checks in one command: the GPU tests, then the GPU benches
# (`binseg bench frequency`, `gpu-network` at 480x640 and 240x320, `gpu-pipeline`).
#
#   bash bench/run_gpu.sh        # from the repo root, on a machine with an NVIDIA GPU; about 5 minutes
#
# Every step has its own time limit and together they stay under 10 minutes, so one call of at
# most that length always ends with every file written.
#
# Uses the machine's own python3 (torch with CUDA, nvcc on PATH); the repo need not be
# installed. Writes env.txt, pytest.txt and one bench_*.md per bench into $OUT (default
# build/gpu_out). Exits non-zero if any step failed; every step still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/build/gpu_out}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export BINSEG_KERNEL_CACHE="${BINSEG_KERNEL_CACHE:-/tmp/binseg_kernel_cache}"
status=0

{
    date -u +%Y-%m-%dT%H:%MZ
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv
    nvcc --version | tail -n 2
    "$PYTHON" -c "import torch, onnxruntime; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name()); print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"
    nproc
} >"$OUT/env.txt" 2>&1

step() {  # step NAME TIMEOUT PYTHON-CODE: one bench, its output in $OUT/NAME.md
    echo "== $1"
    timeout "$2" "$PYTHON" -c "$3" 2>&1 | tee "$OUT/$1.md" || status=1
}

echo "== pytest (GPU tests)"
timeout 140 "$PYTHON" -m pytest -ra -p no:cacheprovider test/test_gpu.py 2>&1 | tee "$OUT/pytest.txt" || status=1

step bench_frequency 180 "
from binseg_ros.bench.frequency import run_frequency_bench
raise SystemExit(run_frequency_bench(runs=100, warmup=10))"

for size in '480, 640' '240, 320'; do
    step "bench_gpu_network_${size/, /x}" 100 "
from pathlib import Path
from binseg_ros.bench.gpu_network import run_gpu_network_bench
raise SystemExit(run_gpu_network_bench(Path('engines/binseg_s/weights.pt'), ($size), runs=300, warmup=30))"
done

step bench_gpu_pipeline 60 "
from binseg_ros.bench.gpu_pipeline import run_gpu_pipeline_bench
from binseg_ros.engines.locate import open_engine_folder
raise SystemExit(run_gpu_pipeline_bench(open_engine_folder(), sets=300, warmup=30))"

exit "$status"
