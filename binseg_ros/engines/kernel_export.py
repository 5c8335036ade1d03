"""The ONNX side of the frequency-branch plugin: the node's schema and its export translation.

The ``kernel`` frequency form exports ``torch.ops.binseg.frequency_split`` as one node
``binseg::BinsegFrequencySplit(x, sigma) -> (low, high)``. TensorRT's ONNX parser has no
importer for it, so it looks up the plugin creator registered under the node's op type with
the ``plugin_version`` / ``plugin_namespace`` attributes, and the project's kernels run inside
the engine. The schema is registered with ``onnx.defs`` so the exporter can emit the node and
``onnx.checker`` validates its inputs, outputs and attributes like any standard operator's.
"""

from __future__ import annotations

from typing import Any

import onnx
import onnxscript
import torch
from onnx.defs import OpSchema

from binseg_ros.kernels import ops  # registers torch.ops.binseg.frequency_split
from binseg_ros.kernels.plugin_identity import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

DOMAIN = PLUGIN_NAMESPACE
DOMAIN_VERSION = 1


def _schema() -> OpSchema:
    formal = OpSchema.FormalParameter
    attribute = OpSchema.Attribute
    return OpSchema(
        PLUGIN_NAME,
        DOMAIN,
        DOMAIN_VERSION,
        doc=ops.__doc__ or "",
        inputs=[formal("x", "T", "features [N, C, H, W]"), formal("sigma", "tensor(float)", "cutoffs [C]")],
        outputs=[formal("low", "T", "low-pass part of x"), formal("high", "T", "x - low")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "fp32 or fp16 I/O, fp32 accumulation")],
        attributes=[
            attribute("plugin_version", OpSchema.AttrType.STRING, "TensorRT plugin creator version"),
            attribute("plugin_namespace", OpSchema.AttrType.STRING, "TensorRT plugin creator namespace"),
        ],
    )


if not onnx.defs.has(PLUGIN_NAME, DOMAIN):
    onnx.defs.register_schema(_schema())

_OPSET = onnxscript.values.Opset(DOMAIN, DOMAIN_VERSION)


def _frequency_split_node(x: Any, sigma: Any) -> Any:  # onnxscript symbolic values
    return getattr(_OPSET, PLUGIN_NAME)(
        x, sigma, plugin_version=PLUGIN_VERSION, plugin_namespace=PLUGIN_NAMESPACE, _num_outputs=2
    )


TRANSLATION_TABLE = {torch.ops.binseg.frequency_split.default: _frequency_split_node}
"""``custom_translation_table`` for ``torch.onnx.export(dynamo=True)`` of the ``kernel`` form."""
