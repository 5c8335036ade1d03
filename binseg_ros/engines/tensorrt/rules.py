"""The TensorRT rules that need no TensorRT: precisions, the builder settings of each TensorRT
generation, Q/DQ detection, and the choice of graph form. They run (and are tested) on any
machine, and refuse what cannot be built before TensorRT or a GPU is touched.

TensorRT API generations (written against the documented Python API of 10.x, 10.3 being
JetPack 6, and of 11.x):

- **10.x** builds *weakly typed* networks: the ONNX graph is fp32 and the ``FP16`` / ``INT8``
  builder flags let TensorRT pick lower-precision kernels per layer.
- **11.x** removed those flags and weak typing: every network is *strongly typed*, and a
  layer runs in the type the ONNX graph gives its tensors. An fp16 engine then needs an
  fp16-typed ONNX graph (e.g. converted with NVIDIA ModelOpt AutoCast), which this release
  does not export, so on TensorRT ≥ 11 only ``fp32`` (and ``int8`` from Q/DQ graphs) is built.
- **int8** needs explicit quantization (QuantizeLinear/DequantizeLinear nodes in the graph):
  TensorRT 10 deprecates implicit calibration and TensorRT 11 removes it, so this project has
  no calibrator. The exported graphs carry no Q/DQ nodes, so int8 is refused before TensorRT
  is touched (:func:`check_precision`).

A precision name is validated once, by :func:`require_precision`, where it enters (the CLI,
the backend, a plan record read from disk); past that boundary it is a :data:`Precision`
and nothing checks the name again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from binseg_ros.engines.manifest import Manifest
from binseg_ros.errors import BackendError, ManifestError
from binseg_ros.modalities import Subset, subset_name

if TYPE_CHECKING:
    import onnx

Precision = Literal["fp16", "fp32", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp16", "fp32", "int8")
"""``int8`` only for graphs that carry explicit Q/DQ nodes: TensorRT 10 deprecates implicit
calibration and TensorRT 11 removes it."""

KERNEL_FORM = "kernel"  # frequency branch as plugin nodes running the project's CUDA kernels
PORTABLE_FORM = "matmul"  # frequency branch as DFT matmuls: no plugin, builds on every TensorRT
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
MIN_TENSORRT_MAJOR = 10
STRONGLY_TYPED_MAJOR = 11


def require_precision(precision: str) -> Precision:
    """The precision name as a :data:`Precision`; the one check of a name from outside.

    Raises:
        BackendError: a precision name that is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def quantization_nodes(onnx_path: str | Path) -> int:
    """How many QuantizeLinear / DequantizeLinear nodes the graph has (subgraphs and functions too).

    Reads only the graph file: its external data (``tensors.bin``) is not loaded.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    functions = sum(node.op_type in QDQ_OPS for function in model.functions for node in function.node)
    return _count_qdq(model.graph) + functions


def _count_qdq(graph: onnx.GraphProto) -> int:
    """Q/DQ nodes of one graph and, recursively, of the subgraphs its nodes carry (If, Loop, Scan)."""
    import onnx

    total = 0
    for node in graph.node:
        total += node.op_type in QDQ_OPS
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                total += _count_qdq(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                total += sum(_count_qdq(g) for g in attribute.graphs)
    return total


def check_precision(onnx_path: str | Path, precision: Precision) -> None:
    """Refuse a precision the graph cannot be built at, before TensorRT is involved.

    Raises:
        BackendError: int8 for a graph without Q/DQ nodes.
    """
    if precision == "int8" and quantization_nodes(onnx_path) == 0:
        raise BackendError(
            f"{onnx_path}: int8 needs an explicitly quantized graph (QuantizeLinear/DequantizeLinear "
            "nodes) and this one has none. TensorRT 10 deprecates implicit INT8 calibration and "
            "TensorRT 11 removes it, so there is no calibrator here, and `binseg export` writes no "
            "Q/DQ graphs; use precision fp16 or fp32"
        )


def builder_settings(major: int, precision: Precision) -> tuple[bool, tuple[str, ...]]:
    """``(strongly_typed, BuilderFlag names to set)`` for a precision on a TensorRT major version.

    TensorRT 10 (weakly typed): fp16 -> ``FP16``, int8 -> ``INT8`` (its Q/DQ scales decide
    what is quantized), fp32 -> none. TensorRT ≥ 11 (strongly typed, those flags removed):
    the graph's own types decide, so fp32 and int8 (Q/DQ) need no flags, and fp16 is refused
    because it would need an fp16-typed ONNX graph, which this release does not export.

    Raises:
        BackendError: a TensorRT older than 10, or fp16 on TensorRT ≥ 11.
    """
    if major < MIN_TENSORRT_MAJOR:
        raise BackendError(
            f"TensorRT {major}.x is too old: the tensorrt backend needs 10.x (10.3 = JetPack 6) or newer"
        )
    if major >= STRONGLY_TYPED_MAJOR:
        if precision == "fp16":
            raise BackendError(
                f"precision fp16 is not available on TensorRT {major}: it builds strongly typed networks "
                "only (the FP16 builder flag is gone), so fp16 needs an fp16-typed ONNX graph, which this "
                "release does not export; use precision fp32"
            )
        return True, ()
    return False, {"fp16": ("FP16",), "int8": ("INT8",), "fp32": ()}[precision]


def choose_form(manifest: Manifest, subset: Subset, plugin_loaded: bool) -> tuple[str, str]:
    """``(form, reason)``: the plugin (``kernel``) graph where it can be built, else ``matmul``.

    Raises:
        ManifestError: the subset is missing, or it has only a kernel graph and no plugin is loaded.
    """
    entry = manifest.entry(subset)
    if KERNEL_FORM in entry.onnx and plugin_loaded:
        return KERNEL_FORM, "plugin library loaded: the frequency branch runs the project's CUDA kernels"
    if PORTABLE_FORM not in entry.onnx:
        raise ManifestError(
            f"{manifest.path}: subset {subset_name(entry.subset)!r} has no {PORTABLE_FORM!r} graph and "
            f"{'no plugin library was given' if KERNEL_FORM in entry.onnx else 'no kernel graph'}; "
            f"it has {', '.join(entry.onnx)}"
        )
    if KERNEL_FORM in entry.onnx:
        return PORTABLE_FORM, "no plugin library loaded, so the plugin-free DFT-as-matmul graph"
    return PORTABLE_FORM, "the engine folder has no kernel (plugin) graph"
