"""Backend selection by name, importing each runtime only when it is chosen."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from binseg_ros.backends.base import Backend
from binseg_ros.engines.manifest import Manifest
from binseg_ros.errors import BackendError

BACKEND_NAMES = ("auto", "onnxruntime", "torch", "tensorrt")


def tensorrt_usable() -> bool:
    """TensorRT is installed and a CUDA GPU is visible (through cuda-python; without it, no GPU).

    Only ``find_spec`` looks for TensorRT, so deciding costs no TensorRT import.
    """
    if importlib.util.find_spec("tensorrt") is None:
        return False
    from binseg_ros.engines.tensorrt.imports import cuda_device_count

    return cuda_device_count() > 0


def resolve(name: str) -> str:
    """The concrete backend ``auto`` stands for on this machine (others map to themselves).

    ``auto`` is TensorRT where it is installed and a GPU is visible, else ONNX Runtime (CPU).
    """
    if name not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        return "tensorrt" if tensorrt_usable() else "onnxruntime"
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

    ``form`` is the ONNX Runtime graph form and ``device`` the torch device. TensorRT picks
    its graph form itself (the plugin ``kernel`` graphs when ``plugin_library`` is a library
    or ``auto`` can build one here, else ``matmul``) and takes ``precision`` (fp16, fp32,
    int8) and ``plan_cache`` (default ``$BINSEG_PLAN_CACHE/<model>``, else
    ``~/.cache/binseg_ros/plans/<model>``).

    Raises:
        BackendError: unknown name, or a runtime that is not installed here.
    """
    concrete = resolve(name)
    if concrete == "tensorrt":
        from binseg_ros.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(manifest, precision, plan_cache, plugin_library)
    if concrete == "torch":
        from binseg_ros.backends.torch import TorchBackend

        return TorchBackend.from_manifest(manifest, device)
    from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(manifest, form)
