"""Engine folders: per-subset ONNX exports, their manifest, and (on GPUs) TensorRT plans."""

from __future__ import annotations
