"""TensorRT (either flavour, see :mod:`.targets`) and cuda-python, imported only when used, the
CUDA return-code check, and the check that this machine can build (and run) plans for a target.

Nothing imports ``tensorrt``, ``tensorrt_rtx`` or ``cuda-python`` at module import: a missing
one is a :class:`BackendError` that says what to install, so the node, the CLI and the tests
import the TensorRT modules on machines without a GPU.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from typing import Any, cast

from binseg_ros.engines.tensorrt.rules import Precision, builder_settings
from binseg_ros.engines.tensorrt.targets import (
    FLAVOUR_ENV,
    FLAVOURS,
    BuildTarget,
    Flavour,
    FlavourName,
    ahead_of_time_target,
    check_capability,
    member_capability,
)
from binseg_ros.errors import BackendError

LOG = logging.getLogger(__name__)


def import_tensorrt() -> Any:
    """The TensorRT module of this process: ``tensorrt`` where it imports, else ``tensorrt_rtx``
    (or only the one ``$BINSEG_TENSORRT`` names); BackendError saying what to install otherwise."""
    chosen = os.environ.get(FLAVOUR_ENV) or None
    if chosen is not None and chosen not in FLAVOURS:
        raise BackendError(f"{FLAVOUR_ENV} must be one of {', '.join(FLAVOURS)} or unset, got {chosen!r}")
    failures = []
    for name in (chosen,) if chosen is not None else FLAVOURS:
        try:
            return importlib.import_module(name)
        except (ImportError, OSError) as exc:  # OSError: the wheel is there but its libraries are not
            failures.append(f"import {name} failed: {exc}")
    raise BackendError(
        f"the tensorrt backend needs the TensorRT Python package ({'; '.join(failures)}); install TensorRT 10.x "
        "for this GPU (JetPack 6 ships 10.3), 11.x, or TensorRT for RTX 1.x, or use backend onnxruntime"
    )


def tensorrt_flavour(trt: Any) -> Flavour:
    """The :class:`Flavour` of an imported TensorRT module."""
    return Flavour(cast(FlavourName, trt.__name__), str(trt.__version__))


def capability_targets(trt: Any) -> tuple[str, ...]:
    """The compute capabilities TensorRT-RTX builds for (``("7.5", "8.0", ...)``); none on full TensorRT."""
    members = getattr(trt, "ComputeCapability", None)
    names = getattr(members, "__members__", {})
    return tuple(member_capability(name) for name in names if name.startswith("SM"))


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


def visible_devices(cudart: Any) -> int:
    """CUDA GPUs visible to this process through cuda-python's runtime ``cudart``; 0 without
    an NVIDIA driver or a device.

    The CUDA runtime answers cudaErrorInsufficientDriver both where no driver is installed and
    where the driver is older than the CUDA major version cuda-python was built for (cuda-python
    13 on JetPack 6's CUDA 12 driver); the driver's version, 0 when there is none, tells them
    apart, so that the second is not reported as a machine without a GPU.

    Raises:
        BackendError: a driver too old for this cuda-python (saying which one to install), or
            another CUDA error.
    """
    errors = cudart.cudaError_t
    error, count = cudart.cudaGetDeviceCount()
    if error == errors.cudaErrorNoDevice:
        return 0
    if error == errors.cudaErrorInsufficientDriver:
        driver = int(cuda_call(cudart.cudaDriverGetVersion(), "cudaDriverGetVersion"))
        if driver == 0:
            return 0
        built_for = int(cuda_call(cudart.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion"))
        raise BackendError(
            f"the installed cuda-python is built for CUDA {_cuda_version(built_for)}, which needs an NVIDIA driver "
            f"for CUDA {built_for // 1000}, but this machine's driver is for CUDA {_cuda_version(driver)}: install the "
            f"cuda-python that matches the system CUDA (pip install 'cuda-python=={driver // 1000}.*'; 12.x on "
            "JetPack 6), or use backend onnxruntime"
        )
    return int(cuda_call((error, count), "cudaGetDeviceCount"))


def _cuda_version(encoded: int) -> str:
    """``12060`` (CUDA's 1000 * major + 10 * minor) as ``12.6``."""
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


@functools.cache
def cuda_device_count() -> int:
    """CUDA GPUs visible to this process; 0 without cuda-python, a driver or a device, and 0
    with a warning where :func:`visible_devices` fails otherwise, so that ``auto`` says why it
    does not use TensorRT on a machine with a GPU."""
    try:
        cudart = import_cudart()
    except BackendError as error:
        LOG.debug("no CUDA GPU usable: %s", error)
        return 0
    try:
        return visible_devices(cudart)
    except BackendError as error:
        LOG.warning("no CUDA GPU usable: %s", error)
        return 0


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


def check_target(precision: Precision, compute_capability: str | None = None) -> tuple[Any, BuildTarget]:
    """``(tensorrt module, target)`` once everything a build for the target needs is there: a
    TensorRT flavour that can build the precision and, for this machine's GPU, cuda-python and
    a visible GPU it supports; ahead of time (``compute_capability``, TensorRT-RTX only), no GPU.
    The precision name and the capability's form were checked where they came in.

    Raises:
        BackendError: naming the first missing piece, before any work is done.
    """
    trt = import_tensorrt()
    flavour = tensorrt_flavour(trt)
    builder_settings(flavour, precision)
    targets = capability_targets(trt)
    if compute_capability is not None:
        return trt, ahead_of_time_target(flavour, compute_capability, targets)
    if visible_devices(import_cudart()) == 0:
        hint = ""
        if flavour.builds_ahead_of_time:
            hint = (
                f"; to build {flavour} plans without one, name the target GPU's compute capability: "
                f"`binseg build --compute-capability 8.9` (one of {', '.join(targets)})"
            )
        raise BackendError(
            "no CUDA GPU is visible to this process: TensorRT plans are built and run on the GPU itself, "
            f"so use backend onnxruntime here{hint}"
        )
    name, major, minor = device_identity()
    target = BuildTarget(flavour, name, f"{major}.{minor}")
    check_capability(flavour, target.compute_capability, targets, f"this GPU, {name}")
    return trt, target
