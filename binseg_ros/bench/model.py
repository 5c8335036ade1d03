"""``binseg bench model``: ONNX Runtime CPU latency per subset, against torch eager in the same run.

For every input size and subset it exports both frequency forms, then times torch eager
(the baseline), ONNX Runtime on the ``matmul`` graph and on the ``fft`` graph, and prints
the median latency and the speed-up over torch. Numerical agreement is a test
(``test/test_export.py``), not a benchmark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.bench.timing import median_ms
from binseg_ros.engines.export import export_engine_folder
from binseg_ros.modalities import CHANNELS, all_subsets, subset_name
from binseg_ros.model import BinSegNet, SubsetGraph, load_checkpoint, save_checkpoint


def random_inputs(subset: tuple[str, ...], size: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``[1, C, H, W]`` float32 inputs in each modality's sensor range (content does not change timing)."""
    scale = {"rgb": 255.0, "depth": 2.0, "thermal": 1000.0}
    offset = {"rgb": 0.0, "depth": 0.0, "thermal": 17900.0}
    return {
        m: (rng.random((1, CHANNELS[m], *size), dtype=np.float32) * scale[m] + offset[m]).astype(np.float32)
        for m in subset
    }


def run_model_bench(
    engines_root: Path, sizes: list[tuple[int, int]], runs: int, warmup: int, checkpoint: Path | None
) -> int:
    if checkpoint is None:
        torch.manual_seed(0)
        checkpoint = save_checkpoint(BinSegNet(), engines_root / "bench-untrained.pt")
    net = load_checkpoint(checkpoint)[0]
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {runs} runs after {warmup} warm-up")
    print("| size | subset | torch eager ms (baseline) | ORT matmul ms | ×torch | ORT fft ms | ×torch |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for size in sizes:
        manifest = export_engine_folder(
            checkpoint, engines_root / f"{size[0]}x{size[1]}", size, forms=("matmul", "fft")
        )
        backends = {form: OnnxRuntimeBackend(manifest, form) for form in ("matmul", "fft")}
        net.set_frequency_form("fft")
        for subset in all_subsets():
            inputs = random_inputs(subset, size, rng)
            graph = SubsetGraph(net, subset).eval()
            tensors = tuple(torch.from_numpy(inputs[m]) for m in subset)
            with torch.no_grad():
                torch_ms = median_ms(lambda: graph(*tensors), runs, warmup)
            row = [f"{size[0]}x{size[1]}", subset_name(subset), f"{torch_ms:.1f}"]
            for backend in backends.values():
                ms = median_ms(lambda: backend.run(inputs), runs, warmup)
                row += [f"{ms:.1f}", f"{torch_ms / ms:.2f}"]
            print("| " + " | ".join(row) + " |", flush=True)
    return 0
