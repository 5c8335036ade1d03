#!/usr/bin/env bash
# The GPU checks in one command: the GPU tests, then `binseg bench frequency` and `bench gpu-network`.
#
#   bash bench/run_gpu.sh        # from the repo root, on a machine with an NVIDIA GPU; a few minutes
#
# Uses the machine's own python3 (torch with CUDA, nvcc on PATH); the repo need not be
# installed. Writes env.txt, pytest.txt, bench_frequency.md and bench_gpu_network.md into
# $OUT (default build/gpu_out). Exits non-zero if any step failed; every step still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/build/gpu_out}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0

{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv
    nvcc --version | tail -n 2
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
} >"$OUT/env.txt" 2>&1

echo "== pytest (GPU tests + kernel builds)"
timeout 300 "$PYTHON" -m pytest -ra -p no:cacheprovider test/test_gpu.py test/test_kernels.py 2>&1 \
    | tee "$OUT/pytest.txt" || status=1

echo "== bench frequency"
timeout 120 "$PYTHON" -c "
from binseg_ros.bench.frequency import run_frequency_bench
raise SystemExit(run_frequency_bench(runs=200, warmup=20))
" 2>&1 | tee "$OUT/bench_frequency.md" || status=1

echo "== bench gpu-network"
timeout 150 "$PYTHON" -c "
from pathlib import Path
from binseg_ros.bench.gpu_network import run_gpu_network_bench
raise SystemExit(run_gpu_network_bench(Path('engines/binseg_s/weights.pt'), (480, 640), runs=300, warmup=30))
" 2>&1 | tee "$OUT/bench_gpu_network.md" || status=1

exit "$status"
