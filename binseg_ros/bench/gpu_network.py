"""``binseg bench gpu-network``: the whole network on the GPU, torch eager against the measured path.

Per subset, three paths over the same weights and inputs:

- eager fft (the baseline): what the torch backend did on CUDA before the GPU path: the
  ``fft`` frequency form, eager, numpy → ``torch.from_numpy(...).to("cuda")`` (pageable
  copies), ``sigmoid``, ``.cpu().numpy()``;
- kernel, no graphs: :class:`~binseg_ros.backends.torch.TorchBackend` with
  ``cuda_graphs=False``: the ``kernel`` form and pinned staging buffers, run eagerly;
- kernel + graphs: the backend as shipped (one CUDA graph per subset).

Latency is end-to-end wall-clock time per call, numpy in → numpy out: every path includes
its host→device and device→host copies, and every path has synchronized when it returns
(``.cpu()`` blocks), so the clocks measure the same span. Throughput is ``1000 / p50``
frames/s for one frame in flight, and ``×eager`` is eager's p50 over the path's p50.
``GPU ms`` splits the graph path: the median GPU time of the network alone replayed from a
CUDA graph on device-resident inputs (no copies, no host), the floor the copies sit on.
cuDNN's TF32 setting is left at torch's default (printed) and is the same for every path.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import torch

from binseg_ros.backends.torch import TorchBackend
from binseg_ros.bench.model import random_inputs
from binseg_ros.bench.timing import cuda_graph_median_ms, latency_samples_ms
from binseg_ros.errors import BackendError
from binseg_ros.modalities import MODALITIES, Subset, all_subsets, subset_name
from binseg_ros.model import BinSegNet, load_checkpoint


def _eager(net: BinSegNet, device: torch.device, subset: Subset, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        tensors = {m: torch.from_numpy(inputs[m]).to(device) for m in subset}
        return torch.sigmoid(net(tensors))[0, 0].cpu().numpy()


def _network_gpu_ms(
    backend: TorchBackend, subset: Subset, feed: dict[str, np.ndarray], runs: int, warmup: int
) -> float:
    """The backend's network alone on device-resident inputs, replayed from a CUDA graph."""
    inputs = {m: torch.from_numpy(feed[m]).to(backend.device) for m in subset}
    with torch.inference_mode():
        return cuda_graph_median_ms(lambda: torch.sigmoid(backend.net(inputs)), runs, warmup)


def run_gpu_network_bench(
    checkpoint: Path, size: tuple[int, int] = (480, 640), runs: int = 300, warmup: int = 30
) -> int:
    """Print one markdown row per (subset, path); returns the exit code."""
    if not torch.cuda.is_available():
        raise BackendError("binseg bench gpu-network needs a CUDA GPU (torch.cuda.is_available() is False)")
    device = torch.device("cuda", torch.cuda.current_device())
    eager_net = load_checkpoint(checkpoint)[0].to(device).eval()
    eager_net.set_frequency_form("fft")
    # Separate copies: each backend sets its network's form, and the graphs hold its weights.
    paths = {
        "kernel, no graphs": TorchBackend(load_checkpoint(checkpoint)[0], size, str(device), cuda_graphs=False),
        "kernel + graphs": TorchBackend(load_checkpoint(checkpoint)[0], size, str(device), cuda_graphs=True),
    }
    inputs = random_inputs(MODALITIES, size, np.random.default_rng(0))
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__} (CUDA {torch.version.cuda}); "
          f"cuDNN TF32 {'on' if torch.backends.cudnn.allow_tf32 else 'off'}")  # fmt: skip
    print(f"{checkpoint} at {size[0]}x{size[1]}, batch 1; {runs} timed calls after {warmup} warm-up calls")
    print("end-to-end wall clock per call, numpy in -> numpy out, copies included on every path")
    print()
    print("| subset | path | p50 ms | p99 ms | frames/s | ×eager | GPU ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for subset in all_subsets():
        feed = {m: inputs[m] for m in subset}
        eager = latency_samples_ms(lambda: _eager(eager_net, device, subset, feed), runs, warmup)
        timings = {"eager fft (baseline)": eager}
        for name, backend in paths.items():
            timings[name] = latency_samples_ms(lambda: backend.run(feed), runs, warmup)
        baseline = statistics.median(eager)
        gpu = {"kernel + graphs": _network_gpu_ms(paths["kernel + graphs"], subset, feed, runs, warmup)}
        for name, samples in timings.items():
            p50, p99 = statistics.median(samples), float(np.percentile(samples, 99))
            row = [subset_name(subset), name, f"{p50:.2f}", f"{p99:.2f}", f"{1000 / p50:.0f}", f"{baseline / p50:.2f}"]
            row.append(f"{gpu[name]:.2f}" if name in gpu else "")
            print("| " + " | ".join(row) + " |", flush=True)
    return 0
