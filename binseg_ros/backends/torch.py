"""Torch backend: the reference network itself, on CPU or CUDA.

It runs the checkpoint the manifest lists (after checking its sha256).

- CPU: the ``fft`` frequency form, eagerly, so it is also the yardstick the exported graphs
  are compared against.
- CUDA: the measured GPU path. The ``kernel`` form (the project's frequency-split kernels),
  one CUDA graph per subset over static device tensors, and pinned host staging buffers.
  At batch 1 a call is 240 to 500 small kernels (one modality to all three) whose CPU launch
  overhead, not the GPU, sets the latency; replaying a captured graph launches them all in
  one call. Pinned (page-locked) buffers let the host↔device copies run as async DMA on the
  backend's stream instead of staged, synchronous copies from pageable numpy memory. It
  needs nvcc on first use (or a launcher already in the kernel cache), see
  :mod:`binseg_ros.kernels.launcher`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from binseg_ros.core.backend import check_arrays, input_subset
from binseg_ros.engines.manifest import Manifest
from binseg_ros.errors import BackendError
from binseg_ros.modalities import CHANNELS, MODALITIES, Subset
from binseg_ros.model.checkpoint import load_checkpoint
from binseg_ros.model.network import BinSegNet

WARMUP_RUNS = 3
"""Eager runs before capture: cuDNN/cuBLAS set-up and the kernels' first-use build happen
there, because a capture may not allocate workspaces, load modules or synchronize."""


def torch_device(name: str) -> torch.device:
    """``name`` (``cpu``, ``cuda`` or ``cuda:N``) as a device this torch build can run on, here.

    Checked before anything is loaded, because torch's own refusal is a bare AssertionError
    ("Torch not compiled with CUDA enabled") on a CPU build, or a list of twenty device types.

    Raises:
        BackendError: not a device name, a device type other than cpu and cuda, or a CUDA
            device this machine and torch build do not have.
    """
    expected = "the torch backend runs on cpu, cuda or cuda:N"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise BackendError(f"device {name!r} is not a device name; {expected}") from exc
    if device.type not in ("cpu", "cuda"):
        raise BackendError(f"device {name!r}: {expected}")
    if device.type == "cpu":
        return device
    if not torch.cuda.is_available():
        cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise BackendError(f"device {name!r}: no CUDA device usable here (torch {torch.__version__}, {cuda})")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise BackendError(f"device {name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device


@dataclass
class _CudaSubset:
    """One subset's device state; the graph reads and writes these exact tensors on replay."""

    host_inputs: dict[str, torch.Tensor]  # pinned [1, C, H, W]
    device_inputs: dict[str, torch.Tensor]  # static [1, C, H, W]
    host_output: torch.Tensor  # pinned [H, W]
    graph: torch.cuda.CUDAGraph | None = None
    device_output: torch.Tensor | None = None  # static [H, W], written by the graph


class TorchBackend:
    """Runs a :class:`BinSegNet` at a fixed input size (like the static-shape engines).

    ``cuda_graphs=False`` keeps the CUDA path (kernel form, pinned buffers) but runs the
    network eagerly, to measure what the graphs add. Device state per subset is created on
    first use, like ONNX Runtime sessions.
    """

    name = "torch"

    def __init__(
        self, net: BinSegNet, input_size: tuple[int, int], device: str = "cpu", cuda_graphs: bool = True
    ) -> None:
        self.input_size = input_size
        self.device = torch_device(device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.cuda_graphs = cuda_graphs and self.cuda
        self.net = net.to(self.device).eval()
        self.net.set_frequency_form("kernel" if self.cuda else "fft")
        self._stream = torch.cuda.Stream(self.device) if self.cuda else None
        self._subsets: dict[Subset, _CudaSubset] = {}

    @classmethod
    def from_manifest(cls, manifest: Manifest, device: str = "cpu", cuda_graphs: bool = True) -> TorchBackend:
        """The checkpoint an opened engine folder was exported from (its sha256 was checked when
        the folder was opened, :func:`~binseg_ros.engines.locate.open_engine_folder`)."""
        return cls(load_checkpoint(manifest.root / manifest.weights.file)[0], manifest.input_size, device, cuda_graphs)

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        height, width = self.input_size
        expected = {m: (1, CHANNELS[m], height, width) for m in MODALITIES}
        subset = input_subset(inputs)
        arrays = check_arrays(subset, inputs, expected)
        if self.cuda:
            return self._run_cuda(subset, arrays)
        with torch.inference_mode():
            tensors = {m: torch.from_numpy(arrays[m]).to(self.device) for m in subset}
            probability = torch.sigmoid(self.net(tensors))
        return probability[0, 0].float().cpu().numpy()

    def _forward(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(self.net(tensors))[0, 0]

    def _run_cuda(self, subset: Subset, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        state = self._subsets.get(subset) or self._prepare(subset)
        assert self._stream is not None  # made in __init__ on CUDA
        with torch.inference_mode(), torch.cuda.stream(self._stream):
            for m in subset:
                np.copyto(state.host_inputs[m].numpy(), arrays[m])
                state.device_inputs[m].copy_(state.host_inputs[m], non_blocking=True)
            if state.graph is not None and state.device_output is not None:
                state.graph.replay()
                output = state.device_output
            else:
                output = self._forward(state.device_inputs)
            state.host_output.copy_(output, non_blocking=True)
            self._stream.synchronize()  # the staging buffers are reused by the next call
        return state.host_output.numpy().copy()

    def _prepare(self, subset: Subset) -> _CudaSubset:
        """Allocate the subset's buffers and, with graphs on, warm up and capture its graph."""
        height, width = self.input_size
        shapes = {m: (1, CHANNELS[m], height, width) for m in subset}
        state = _CudaSubset(
            host_inputs={m: torch.zeros(shape, pin_memory=True) for m, shape in shapes.items()},
            device_inputs={m: torch.zeros(shape, device=self.device) for m, shape in shapes.items()},
            host_output=torch.empty((height, width), pin_memory=True),
        )
        assert self._stream is not None  # made in __init__ on CUDA
        self._stream.wait_stream(torch.cuda.current_stream(self.device))  # the zero fills ran there
        if self.cuda_graphs:
            # Warm-up on a side stream (here the backend's own), as torch.cuda.graph's docs require.
            with torch.inference_mode(), torch.cuda.stream(self._stream):
                for _ in range(WARMUP_RUNS):
                    self._forward(state.device_inputs)
            torch.cuda.current_stream(self.device).wait_stream(self._stream)
            state.graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.device(self.device), torch.cuda.graph(state.graph):
                state.device_output = self._forward(state.device_inputs)
        self._subsets[subset] = state
        return state
