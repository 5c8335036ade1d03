"""``binseg bench precision``: ONNX Runtime CPU latency per subset of an engine folder's fp16
and int8 graphs, against its fp32 ``matmul`` graphs timed in the same run.

Each form runs in its own sessions on the same inputs, one after another per subset, so the
forms share the machine's state. ONNX Runtime's CPU provider has fp16 kernels for few
operators and inserts casts around the rest, and its int8 convolutions are the integer
kernels of the x86/ARM CPU: the ratios say what a CPU-only robot gains from each form; on a
GPU TensorRT decides (``binseg build --precision``).
"""

from __future__ import annotations

import numpy as np

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.bench.model import random_inputs
from binseg_ros.bench.timing import median_ms
from binseg_ros.engines.manifest import Manifest
from binseg_ros.modalities import subset_name

BASELINE = "matmul"
FORMS = ("matmul-fp16", "matmul-int8")


def run_precision_bench(manifest: Manifest, runs: int, warmup: int) -> int:
    """Print one markdown row per subset; returns the exit code."""
    first = next(iter(manifest.subsets.values()))
    forms = [form for form in FORMS if form in first.onnx]
    backends = {form: OnnxRuntimeBackend(manifest, form) for form in (BASELINE, *forms)}
    rng = np.random.default_rng(0)
    size = manifest.input_size
    print(f"{manifest.root} at {size[0]}x{size[1]}; median of {runs} runs after {warmup} warm-up runs")
    print("| subset | fp32 matmul ms (baseline) | " + " | ".join(f"{f} ms | ×fp32" for f in forms) + " |")
    print("|---|---:|" + "---:|---:|" * len(forms))
    for entry in manifest.subsets.values():
        inputs = random_inputs(entry.subset, size, rng)
        times = {form: median_ms(lambda: backend.run(inputs), runs, warmup) for form, backend in backends.items()}
        row = [subset_name(entry.subset), f"{times[BASELINE]:.1f}"]
        row += [cell for form in forms for cell in (f"{times[form]:.1f}", f"{times[BASELINE] / times[form]:.2f}")]
        print("| " + " | ".join(row) + " |", flush=True)
    return 0
