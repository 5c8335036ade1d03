"""TensorRT and cuda-python, imported only when used, the CUDA return-code check, and the
check that this machine can build and run plans at all.

Nothing imports ``tensorrt`` or ``cuda-python`` at module import: a missing one is a
:class:`BackendError` that says what to install, so the node, the CLI and the tests import
the TensorRT modules on machines without a GPU.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from binseg_ros.engines.tensorrt.rules import Precision, builder_settings
from binseg_ros.errors import BackendError, BinsegError

LOG = logging.getLogger(__name__)


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or BackendError saying what is missing."""
    try:
        import tensorrt
    except (ImportError, OSError) as exc:  # OSError: the wheel is there but libnvinfer is not
        raise BackendError(
            f"the tensorrt backend needs the TensorRT Python package (import tensorrt failed: {exc}); "
            "install TensorRT 10.x for this GPU (JetPack 6 ships 10.3), or use backend onnxruntime"
        ) from exc
    return tensorrt


def import_cudart() -> Any:
    """cuda-python's CUDA runtime bindings (``cuda.bindings.runtime``; ``cuda.cudart`` before 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python < 12.6 (older JetPack images)
        except ImportError as exc:
            raise BackendError(
                "the tensorrt backend needs cuda-python for its device buffers and stream "
                "(pip install cuda-python, matching the CUDA major version of this machine), "
                "or use backend onnxruntime"
            ) from exc
    return runtime


def cuda_call(result: Any, what: str) -> Any:
    """Check one cuda-python call: its ``(error, *values)`` tuple becomes its value(s).

    Every cuda-python function returns its ``cudaError_t`` first instead of raising, so an
    unchecked call fails silently and the next TensorRT call fails somewhere else. All calls
    go through here; a failure is a BackendError naming the call and the CUDA error.
    """
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:  # cudaSuccess
        raise BackendError(f"CUDA call {what} failed: {getattr(error, 'name', error)} ({int(error)})")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


@functools.cache
def cuda_device_count() -> int:
    """CUDA GPUs visible to this process; 0 without cuda-python, a driver, or a device."""
    try:
        cudart = import_cudart()
        return int(cuda_call(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount"))
    except BinsegError as error:
        LOG.debug("no CUDA GPU usable: %s", error)
        return 0


def tensorrt_major(version: str) -> int:
    """``"10.3.0.30"`` -> 10."""
    try:
        return int(version.split(".")[0])
    except ValueError as exc:
        raise BackendError(f"cannot read the TensorRT version {version!r}") from exc


@functools.cache
def trt_logger() -> Any:
    """One TensorRT logger (warnings and errors to stderr) shared by builders and runtimes."""
    trt = import_tensorrt()
    return trt.Logger(trt.Logger.WARNING)


def device_identity() -> tuple[str, int, int]:
    """``(name, major, minor)`` of this process's current CUDA device."""
    cudart = import_cudart()
    device = cuda_call(cudart.cudaGetDevice(), "cudaGetDevice")
    props = cuda_call(cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(name).strip(), int(props.major), int(props.minor)


def check_target(precision: Precision) -> Any:
    """The ``tensorrt`` module, once everything a build or an engine on this machine needs is
    there: TensorRT ≥ 10, cuda-python, a visible GPU, and a precision this TensorRT can build
    (not fp16 on ≥ 11). The precision name itself was checked where it came in
    (:func:`~binseg_ros.engines.tensorrt.rules.require_precision`).

    Raises:
        BackendError: naming the first missing piece, before any work is done.
    """
    trt = import_tensorrt()
    import_cudart()
    if cuda_device_count() == 0:
        raise BackendError(
            "no CUDA GPU is visible to this process: TensorRT plans are built and run on the GPU itself; "
            "use backend onnxruntime"
        )
    builder_settings(tensorrt_major(trt.__version__), precision)
    return trt
