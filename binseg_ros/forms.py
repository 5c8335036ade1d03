"""The forms of the frequency branch, torch-free so runtimes can validate a form cheaply.

- ``fft``: ``torch.fft``, exported as ONNX ``DFT`` (TensorRT parses it from 11.2 on).
- ``matmul``: the DFT as products with constant matrices: every ONNX runtime takes it.
- ``kernel``: the project's CUDA kernels; exported as TensorRT plugin nodes.

See :mod:`binseg_ros.model.frequency` for the forms themselves.
"""

from __future__ import annotations

from typing import Literal

FrequencyForm = Literal["fft", "matmul", "kernel"]
FREQUENCY_FORMS: tuple[FrequencyForm, ...] = ("fft", "matmul", "kernel")
PORTABLE_FORMS: tuple[FrequencyForm, ...] = ("fft", "matmul")
"""The forms whose ONNX graphs hold only standard operators (``kernel`` needs the plugin)."""
