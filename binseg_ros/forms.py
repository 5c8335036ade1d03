"""The graph forms of an engine folder, torch-free so runtimes can validate a form cheaply.

A form is a frequency-branch form, optionally in fp16:

- ``fft``: ``torch.fft``, exported as ONNX ``DFT`` (TensorRT parses it from 11.2 on).
- ``matmul``: the DFT as products with constant matrices: every ONNX runtime takes it.
- ``kernel``: the project's CUDA kernels; exported as TensorRT plugin nodes.
- ``matmul-fp16``: the ``matmul`` graph typed fp16 (weights and activations), with fp32 kept
  where fp16 loses the signal (:meth:`~binseg_ros.model.network.BinSegNet.to_half`): what a
  strongly typed TensorRT (11.x, TensorRT-RTX) builds at fp16; fp32 inputs and output.
- ``matmul-int8``: the ``matmul`` graph with explicit int8 Q/DQ nodes, written by ``binseg
  quantize`` from calibration frames (:mod:`binseg_ros.engines.quantize`), not by export:
  what TensorRT builds at int8 and ONNX Runtime runs quantized on the CPU.

See :mod:`binseg_ros.model.frequency` for the frequency forms themselves.
"""

from __future__ import annotations

from typing import Literal, cast

FrequencyForm = Literal["fft", "matmul", "kernel"]
FREQUENCY_FORMS: tuple[FrequencyForm, ...] = ("fft", "matmul", "kernel")

GraphForm = Literal["fft", "matmul", "kernel", "matmul-fp16", "matmul-int8"]
HALF_SUFFIX = "-fp16"
INT8_SUFFIX = "-int8"
GRAPH_FORMS: tuple[GraphForm, ...] = ("fft", "matmul", "kernel", "matmul-fp16")
"""The forms ``binseg export`` writes (``matmul-int8`` needs calibration frames: ``binseg quantize``)."""
PORTABLE_FORMS: tuple[GraphForm, ...] = ("fft", "matmul", "matmul-fp16", "matmul-int8")
"""The forms whose ONNX graphs hold only standard operators (``kernel`` needs the plugin)."""


def frequency_form(form: GraphForm) -> FrequencyForm:
    """The frequency-branch form of a graph form: ``matmul-fp16`` → ``matmul``."""
    return cast(FrequencyForm, form.removesuffix(HALF_SUFFIX).removesuffix(INT8_SUFFIX))


def is_half(form: GraphForm) -> bool:
    """Whether the form's graphs are typed fp16 (exported from the network in fp16)."""
    return form.endswith(HALF_SUFFIX)
