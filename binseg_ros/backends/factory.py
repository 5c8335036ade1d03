"""Backend selection by name, importing each runtime only when it is chosen."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from binseg_ros.core.backend import Backend
from binseg_ros.engines.manifest import Manifest
from binseg_ros.engines.tensorrt.targets import FLAVOURS
from binseg_ros.errors import BackendError

BACKEND_NAMES = ("auto", "onnxruntime", "torch", "tensorrt")
LOG = logging.getLogger(__name__)


def tensorrt_usable(precision: str = "fp16") -> bool:
    """A TensorRT flavour (``tensorrt`` or ``tensorrt_rtx``) is installed, a CUDA GPU is visible
    (through cuda-python; without it, no GPU), and that flavour can build ``precision`` for it.

    ``find_spec`` looks for TensorRT first, so a machine without it pays no TensorRT import.
    A TensorRT that cannot serve this GPU or precision (TensorRT-RTX on a GPU it does not
    target, fp16 on a strongly typed flavour) is logged and not used: ``auto`` must start.
    """
    if all(importlib.util.find_spec(name) is None for name in FLAVOURS):
        return False
    from binseg_ros.engines.tensorrt.imports import check_target, cuda_device_count
    from binseg_ros.engines.tensorrt.rules import require_precision

    if cuda_device_count() == 0:
        return False
    try:
        check_target(require_precision(precision))
    except BackendError as error:
        LOG.warning("backend auto: not TensorRT (%s); using onnxruntime", error)
        return False
    return True


def resolve(name: str, precision: str = "fp16") -> str:
    """The concrete backend ``auto`` stands for on this machine (others map to themselves).

    ``auto`` is TensorRT (either flavour) where it is installed and can build ``precision``
    for the visible GPU, else ONNX Runtime (CPU).
    """
    if name not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        return "tensorrt" if tensorrt_usable(precision) else "onnxruntime"
    return name


def create_backend(
    name: str,
    manifest: Manifest,
    form: str = "matmul",
    device: str = "cpu",
    precision: str = "fp16",
    plan_cache: str | Path | None = None,
    plugin_library: str | Path | None = "auto",
) -> Backend:
    """Build the named backend for an engine folder.

    ``form`` is the ONNX Runtime graph form and ``device`` the torch device. TensorRT (full
    ``tensorrt`` where it imports, else ``tensorrt_rtx``) picks its graph form itself (the
    plugin ``kernel`` graphs when ``plugin_library`` is a library or ``auto`` can build one
    here, else ``matmul``; always ``matmul`` on TensorRT-RTX) and takes ``precision`` (fp16, fp32,
    int8) and ``plan_cache`` (default ``$BINSEG_PLAN_CACHE/<model>``, else
    ``~/.cache/binseg_ros/plans/<model>``).

    Raises:
        BackendError: unknown name, a runtime that is not installed here, or a torch ``device`` this
            machine does not have (see :func:`~binseg_ros.backends.torch.torch_device`).
    """
    concrete = resolve(name, precision)
    if concrete == "tensorrt":
        from binseg_ros.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(manifest, precision, plan_cache, plugin_library)
    if concrete == "torch":
        from binseg_ros.backends.torch import TorchBackend

        return TorchBackend.from_manifest(manifest, device)
    from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(manifest, form)
