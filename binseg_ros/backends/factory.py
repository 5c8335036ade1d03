"""Backend selection by name, importing each runtime only when it is chosen."""

from __future__ import annotations

import importlib.util

from binseg_ros.backends.base import Backend
from binseg_ros.engines.manifest import Manifest
from binseg_ros.errors import BackendError

BACKEND_NAMES = ("auto", "onnxruntime", "torch", "tensorrt")


def resolve(name: str) -> str:
    """The concrete backend ``auto`` stands for on this machine (others map to themselves).

    ``auto`` would pick TensorRT where it is importable and a GPU exists; the TensorRT
    backend is not part of this release, so ``auto`` is ONNX Runtime (CPU) for now.
    """
    if name not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}")
    return "onnxruntime" if name == "auto" else name


def create_backend(name: str, manifest: Manifest, form: str = "matmul", device: str = "cpu") -> Backend:
    """Build the named backend for an engine folder.

    Raises:
        BackendError: unknown name, or a runtime that is not installed here.
    """
    concrete = resolve(name)
    if concrete == "tensorrt":
        available = importlib.util.find_spec("tensorrt") is not None
        raise BackendError(
            "the tensorrt backend is not part of this release yet"
            + ("" if available else " (and the tensorrt package is not installed here)")
            + "; use backend onnxruntime or torch"
        )
    if concrete == "torch":
        from binseg_ros.backends.torch import TorchBackend

        return TorchBackend.from_manifest(manifest, device)
    from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(manifest, form)
