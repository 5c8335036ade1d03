"""TensorRT backend: the cached plan of each subset, run on one CUDA stream, replayed as a CUDA graph.

Either TensorRT flavour runs it (full ``tensorrt`` where it imports, else ``tensorrt_rtx``; see
:mod:`binseg_ros.engines.tensorrt.targets`). TensorRT and ``cuda-python`` are imported when a
backend is constructed, not when this module is imported, so the node and the tests import it
anywhere; constructing it without them or without a GPU is a BackendError that says what to do.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from binseg_ros.core.backend import check_arrays, input_subset
from binseg_ros.engines.manifest import OUTPUT_NAME, Manifest
from binseg_ros.engines.tensorrt.imports import check_target, cuda_call, import_cudart, trt_logger
from binseg_ros.engines.tensorrt.loading import load_engine
from binseg_ros.engines.tensorrt.plan_cache import PlanCache, default_plan_dir
from binseg_ros.engines.tensorrt.plugin_library import load_plugin_library, resolve_plugin_library
from binseg_ros.engines.tensorrt.rules import require_precision
from binseg_ros.errors import BackendError
from binseg_ros.modalities import Subset, subset_name

LOG = logging.getLogger(__name__)


class _SubsetEngine:
    """One subset's engine and execution context, its I/O buffers, and (once captured) its CUDA graph.

    Buffers are allocated once and bound to the context once: pinned host memory (viewed as
    numpy arrays) so the copies are truly asynchronous and can be captured in a graph, and
    device memory whose addresses never change, which a replayed graph relies on.
    """

    def __init__(self, trt: Any, cudart: Any, engine: Any, slot: str, stream: Any) -> None:
        self.trt, self.cudart, self.engine, self.slot, self.stream = trt, cudart, engine, slot, stream
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, int] = {}
        self._pinned: list[int] = []
        self.inputs: dict[str, tuple[int, ...]] = {}
        self.outputs: list[str] = []
        self.graph_exec: Any = None
        self.capture_tried = False
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError(f"TensorRT could not create an execution context for {slot} (out of GPU memory?)")
        try:
            for index in range(engine.num_io_tensors):
                self._bind(engine.get_tensor_name(index))
        except BaseException:
            self.close()
            raise

    def _bind(self, name: str) -> None:
        shape = tuple(int(d) for d in self.engine.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise BackendError(f"plan {self.slot}: tensor {name!r} has a dynamic shape {shape}; the exports are static")
        dtype = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))
        nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
        pointer = int(cuda_call(self.cudart.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes}) for {name}"))
        self._pinned.append(pointer)
        raw = (ctypes.c_byte * nbytes).from_address(pointer)
        self.host[name] = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
        self.device[name] = int(cuda_call(self.cudart.cudaMalloc(nbytes), f"cudaMalloc({nbytes}) for {name}"))
        if not self.context.set_tensor_address(name, self.device[name]):
            raise BackendError(f"plan {self.slot}: TensorRT refused the buffer address of tensor {name!r}")
        if self.engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT:
            self.inputs[name] = shape
        else:
            self.outputs.append(name)

    def _enqueue(self) -> None:
        """Host-to-device copies, the engine, device-to-host copies: all on the stream, no wait."""
        to_device = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        to_host = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.inputs:
            host = self.host[name]
            cuda_call(
                self.cudart.cudaMemcpyAsync(self.device[name], host.ctypes.data, host.nbytes, to_device, self.stream),
                f"cudaMemcpyAsync to {name}",
            )
        if not self.context.execute_async_v3(int(self.stream)):
            raise BackendError(f"TensorRT could not enqueue plan {self.slot} (see the TensorRT log above)")
        for name in self.outputs:
            host = self.host[name]
            cuda_call(
                self.cudart.cudaMemcpyAsync(host.ctypes.data, self.device[name], host.nbytes, to_host, self.stream),
                f"cudaMemcpyAsync from {name}",
            )

    def capture(self) -> None:
        """Record H2D + enqueueV3 + D2H as one CUDA graph, to replay with a single launch.

        Called after an ordinary enqueue has run (TensorRT needs one before capture to settle
        its internal state). Thread-local capture mode: other threads of the process (the
        node's executors, torch) keep working while this stream records. Some engines cannot
        be captured (a plugin or layer that synchronises, memory TensorRT-RTX allocates while
        it runs); then this logs once and the ordinary path stays in use.
        """
        self.capture_tried = True
        # TensorRT-RTX can tell beforehand (full TensorRT has no such query): a capture it
        # calls impossible is not attempted, so no failed capture has to be cleaned up.
        capturable = getattr(self.context, "is_stream_capturable", None)
        if capturable is not None and not capturable(int(self.stream)):
            LOG.warning(
                "plan %s: TensorRT says it cannot be captured on this stream; running it without a CUDA graph",
                self.slot,
            )
            return
        cudart = self.cudart
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        try:
            cuda_call(cudart.cudaStreamBeginCapture(self.stream, mode), "cudaStreamBeginCapture")
        except BackendError as error:
            LOG.warning("plan %s: no CUDA graph (%s); running it without one", self.slot, error)
            return
        failure: BackendError | None = None
        try:
            self._enqueue()
        except BackendError as error:
            failure = error
        finally:
            # Always end the capture, or the stream stays in capture mode and every later call fails.
            ended = cudart.cudaStreamEndCapture(self.stream)
        graph = ended[1] if len(ended) > 1 else None
        try:
            cuda_call(ended[:1], "cudaStreamEndCapture")
            if failure is not None:
                raise failure
            self.graph_exec = cuda_call(cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        except BackendError as error:
            cudart.cudaGetLastError()  # returns (and so clears) the capture's error; nothing to check
            LOG.warning("plan %s: CUDA graph capture failed (%s); running it without a graph", self.slot, error)
        else:
            LOG.info("plan %s: captured as a CUDA graph", self.slot)
        finally:
            if graph is not None and int(graph) != 0:  # the instantiated graph does not need its source
                _release(cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")

    def run(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, array in arrays.items():
            np.copyto(self.host[name], array, casting="same_kind")
        if self.graph_exec is not None:
            cuda_call(self.cudart.cudaGraphLaunch(self.graph_exec, self.stream), "cudaGraphLaunch")
        else:
            self._enqueue()
        cuda_call(self.cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        # Copies: the pinned buffers are overwritten by the next run.
        return {name: self.host[name].astype(np.float32, copy=True) for name in self.outputs}

    def close(self) -> None:
        """Free the graph, the context and the buffers (each at most once)."""
        cudart = self.cudart
        if self.graph_exec is not None:
            _release(cudart.cudaGraphExecDestroy(self.graph_exec), "cudaGraphExecDestroy")
            self.graph_exec = None
        self.context = None  # before the buffers it points into
        self.engine = None
        for pointer in self.device.values():
            _release(cudart.cudaFree(pointer), "cudaFree")
        for pointer in self._pinned:
            _release(cudart.cudaFreeHost(pointer), "cudaFreeHost")
        self.device.clear()
        self.host.clear()
        self._pinned.clear()


def _release(result: Any, what: str) -> None:
    """Check a freeing call; a failure is logged, so the rest still gets freed."""
    try:
        cuda_call(result, what)
    except BackendError as error:
        LOG.warning("%s", error)


class TensorRTBackend:
    """One TensorRT engine per subset, created on first use and kept (like the ORT sessions).

    The plan of a subset comes from the plan cache when it was built for this GPU (or, with
    TensorRT-RTX, ahead of time for its compute capability), TensorRT flavour and version,
    precision and ONNX graph, and is built otherwise (minutes
    on a Jetson, once). A plan TensorRT refuses to deserialize is dropped and rebuilt once;
    what still fails is a BackendError, which the node reports, not a crash. With a plugin
    library (``auto``: built here where TensorRT's headers are, see
    :mod:`binseg_ros.engines.tensorrt.plugin_library`) the ``kernel`` graphs, whose frequency branch
    runs the project's CUDA kernels, are used where the folder has them.

    Each subset's first run is an ordinary enqueue; then (``cuda_graphs``) the copies and the
    enqueue are captured as a CUDA graph, and later runs replay it with one launch, which
    saves the per-kernel launch cost that dominates small engines on a Jetson CPU.
    """

    name = "tensorrt"

    def __init__(
        self,
        manifest: Manifest,
        precision: str = "fp16",
        plan_cache: str | Path | None = None,
        plugin_library: str | Path | None = "auto",
        cuda_graphs: bool = True,
        progress: bool = False,
    ) -> None:
        self.precision = require_precision(precision)
        # Refuse at start what no build can give, not at the first frame.
        self.trt, self.target = check_target(self.precision)
        self.cudart = import_cudart()
        self.manifest = manifest
        self.cache = PlanCache(Path(plan_cache) if plan_cache is not None else default_plan_dir(manifest))
        library = resolve_plugin_library(plugin_library, self.cache.root, self.target.flavour)
        # Loaded at start, not at the first frame (once per process: memoized); its sha256 keys the kernel plans.
        self.plugin_sha256 = load_plugin_library(library) if library is not None else None
        self.cuda_graphs = cuda_graphs
        self.progress = progress
        self._lock = threading.Lock()  # one stream and one set of buffers per subset: one run at a time
        self._engines: dict[Subset, _SubsetEngine] = {}
        self._runtime = self.trt.Runtime(trt_logger())
        # Non-blocking: no implicit synchronisation with the legacy default stream other libraries use.
        self._stream = cuda_call(
            self.cudart.cudaStreamCreateWithFlags(self.cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags"
        )

    def engine(self, subset: Subset) -> _SubsetEngine:
        """The (cached) engine of a subset; builds or loads its plan on first use."""
        if self._stream is None:
            raise BackendError("the tensorrt backend is closed")
        if subset not in self._engines:
            result, engine = load_engine(
                self._runtime,
                self.manifest,
                subset,
                self.cache,
                self.target,
                self.precision,
                self.plugin_sha256,
                self.progress,
            )
            loaded = _SubsetEngine(self.trt, self.cudart, engine, result.slot, self._stream)
            expected = set(subset)
            if set(loaded.inputs) != expected or OUTPUT_NAME not in loaded.outputs:
                loaded.close()
                raise BackendError(
                    f"plan {result.slot} has inputs {sorted(loaded.inputs)} and outputs {loaded.outputs}; "
                    f"expected {sorted(expected)} and {OUTPUT_NAME!r}"
                )
            self._engines[subset] = loaded
        return self._engines[subset]

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        subset = input_subset(inputs)
        with self._lock:
            engine = self.engine(subset)
            arrays = check_arrays(subset, inputs, engine.inputs)
            outputs = engine.run(arrays)
            if self.cuda_graphs and not engine.capture_tried:
                engine.capture()
        return outputs[OUTPUT_NAME][0, 0]

    def close(self) -> None:
        """Free every engine's graph and buffers, then the stream. Safe to call twice."""
        with self._lock:
            if self._stream is None:
                return
            _release(self.cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()
            _release(self.cudart.cudaStreamDestroy(self._stream), "cudaStreamDestroy")
            self._stream = None

    def __enter__(self) -> TensorRTBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_stream", None) is not None:
                self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: CUDA may already be gone
            pass

    def __repr__(self) -> str:
        loaded = ", ".join(subset_name(s) for s in self._engines) or "none"
        return f"TensorRTBackend({self.manifest.root}, precision={self.precision}, loaded={loaded})"
