"""The TensorRT rules that need no TensorRT: precisions, the builder settings of each TensorRT
flavour and generation, what a graph holds that a TensorRT cannot take, and the choice of graph
form. They run (and are tested) on any machine, and refuse what cannot be built before the
ONNX parser, a build or a GPU is touched.

TensorRT API generations (written against the documented Python API of 10.x, 10.3 being
JetPack 6, of 11.x, and of TensorRT for RTX 1.x; see :mod:`.targets` for the flavours):

- **10.x** builds *weakly typed* networks: the ONNX graph is fp32 and the ``FP16`` / ``INT8``
  builder flags let TensorRT pick lower-precision kernels per layer.
- **11.x** and **TensorRT-RTX** have no such flags and no weak typing: every network is
  *strongly typed*, and a layer runs in the type the ONNX graph gives its tensors. An fp16
  engine there is built from the fp16-typed ``matmul-fp16`` graph (see
  :mod:`binseg_ros.forms`), ``fp32`` from the ``matmul`` graph, and on 11.x ``int8`` from
  Q/DQ graphs.
- **int8** needs explicit quantization (QuantizeLinear/DequantizeLinear nodes in the graph):
  TensorRT 10 deprecates implicit calibration and TensorRT 11 removes it, so int8 is built
  from the ``matmul-int8`` graphs that ``binseg quantize`` writes; a graph without Q/DQ nodes
  is refused at int8 before the parser is touched (:func:`check_graph`). TensorRT-RTX
  quantizes weights only and is refused int8.
- **graphs**: the ``fft`` form's ONNX ``DFT`` parses on TensorRT ≥ 11.2 only, and the
  ``kernel`` form's plugin nodes need a flavour with plugin layers (not TensorRT-RTX). Both
  are refused before parsing: the parser looks an unknown operator up in the plugin
  registry, and with a plugin library loaded that lookup can abort the whole process.

A precision name is validated once, by :func:`require_precision`, where it enters (the CLI,
the backend, a plan record read from disk); past that boundary it is a :data:`Precision`
and nothing checks the name again.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from binseg_ros.engines.manifest import Manifest
from binseg_ros.engines.tensorrt.targets import MIN_MAJOR, Flavour
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
HALF_FORM = "matmul-fp16"  # the matmul graph typed fp16: strongly typed TensorRT's fp16 engines
INT8_FORM = "matmul-int8"  # the matmul graph with explicit Q/DQ nodes (binseg quantize)
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})  # any other domain is a plugin node to TensorRT's parser


def require_precision(precision: str) -> Precision:
    """The precision name as a :data:`Precision`; the one check of a name from outside.

    Raises:
        BackendError: a precision name that is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def graph_ops(onnx_path: str | Path) -> Counter[tuple[str, str]]:
    """``{(domain, op_type): count}`` over the graph, its subgraphs and its functions.

    Reads only the graph file: its external data (``tensors.bin``) is not loaded.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    ops = _count_ops(model.graph)
    for function in model.functions:
        ops.update((node.domain, node.op_type) for node in function.node)
    return ops


def _count_ops(graph: onnx.GraphProto) -> Counter[tuple[str, str]]:
    """The ops of one graph and, recursively, of the subgraphs its nodes carry (If, Loop, Scan)."""
    import onnx

    ops: Counter[tuple[str, str]] = Counter()
    for node in graph.node:
        ops[(node.domain, node.op_type)] += 1
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                ops.update(_count_ops(attribute.g))
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    ops.update(_count_ops(subgraph))
    return ops


def check_graph(onnx_path: str | Path, flavour: Flavour, precision: Precision) -> None:
    """Refuse a graph this TensorRT cannot take, before its ONNX parser sees it.

    Raises:
        BackendError: plugin nodes on a flavour without plugin layers, ``DFT`` on a TensorRT
            without its importer, or int8 for a graph without Q/DQ nodes.
    """
    ops = graph_ops(onnx_path)
    plugins = sorted({f"{domain}::{op}" for domain, op in ops if domain not in STANDARD_DOMAINS})
    if plugins and not flavour.takes_plugins:
        raise BackendError(
            f"{onnx_path}: {flavour} has no plugin layers, and this graph has plugin nodes ({', '.join(plugins)}); "
            f"build the plugin-free {PORTABLE_FORM!r} graph of this subset"
        )
    dft = sum(count for (domain, op), count in ops.items() if op == "DFT" and domain in STANDARD_DOMAINS)
    if dft and not flavour.parses_dft:
        raise BackendError(
            f"{onnx_path}: {flavour} cannot parse the ONNX DFT operator ({dft} nodes; full TensorRT parses it "
            f"from 11.2 on, TensorRT-RTX not at all); build the {PORTABLE_FORM!r} graph of this subset"
        )
    qdq = sum(count for (domain, op), count in ops.items() if op in QDQ_OPS and domain in STANDARD_DOMAINS)
    if precision == "int8" and qdq == 0:
        raise BackendError(
            f"{onnx_path}: int8 needs an explicitly quantized graph (QuantizeLinear/DequantizeLinear "
            "nodes) and this one has none. TensorRT 10 deprecates implicit INT8 calibration and "
            "TensorRT 11 removes it; `binseg quantize` writes the Q/DQ graphs (form matmul-int8)"
        )


def builder_settings(flavour: Flavour, precision: Precision) -> tuple[bool, tuple[str, ...]]:
    """``(strongly_typed, BuilderFlag names to set)`` for a precision on a TensorRT flavour.

    TensorRT 10 (weakly typed): fp16 -> ``FP16``, int8 -> ``INT8`` (its Q/DQ scales decide
    what is quantized), fp32 -> none. TensorRT ≥ 11 and TensorRT-RTX (strongly typed, no such
    flags): the graph's own types decide (:func:`choose_form` picks the fp16-typed graph for
    fp16), so no flags; int8 (Q/DQ) only on 11.x.

    Raises:
        BackendError: a release older than the flavour's minimum, or int8 on TensorRT-RTX.
    """
    major = flavour.release[0]
    if major < MIN_MAJOR[flavour.name]:
        raise BackendError(
            f"{flavour} is too old: the tensorrt backend needs TensorRT 10.x (10.3 = JetPack 6) or newer, "
            "or TensorRT for RTX 1.x"
        )
    if flavour.rtx and precision == "int8":
        raise BackendError(
            f"precision int8 is not available on {flavour}: its INT8 quantizes weights only (no INT8 builder "
            "flag, no activation calibration), and the matmul-int8 graphs quantize activations too; use fp16 or fp32"
        )
    if flavour.strongly_typed:
        return True, ()
    return False, {"fp16": ("FP16",), "int8": ("INT8",), "fp32": ()}[precision]


def choose_form(
    manifest: Manifest, subset: Subset, flavour: Flavour, precision: Precision, plugin_loaded: bool
) -> tuple[str, str]:
    """``(form, reason)``: the graph a flavour builds at a precision.

    int8 comes from the Q/DQ ``matmul-int8`` graph. Strongly typed flavours take fp16 from the
    fp16-typed ``matmul-fp16`` graph (the plugin graphs are fp32-typed). Otherwise the plugin
    (``kernel``) graph where it can be built, else ``matmul``. ``plugin_loaded`` is never true
    on a flavour without plugin layers (the plugin setting resolves to none there), so
    TensorRT-RTX never gets the ``kernel`` graph.

    Raises:
        ManifestError: the subset is missing, or it lacks the graph the choice needs.
    """
    entry = manifest.entry(subset)
    if precision == "int8":
        _require_form(manifest, subset, INT8_FORM, "int8 needs its Q/DQ nodes")
        return INT8_FORM, "int8: the explicitly quantized (Q/DQ) graph"
    if flavour.strongly_typed and precision == "fp16":
        _require_form(manifest, subset, HALF_FORM, f"{flavour} is strongly typed and builds fp16 from it")
        return HALF_FORM, f"{flavour} is strongly typed: the fp16-typed graph"
    if KERNEL_FORM in entry.onnx and plugin_loaded:
        return KERNEL_FORM, "plugin library loaded: the frequency branch runs the project's CUDA kernels"
    if not flavour.takes_plugins:
        why = f"{flavour} has no plugin layers"
    elif KERNEL_FORM in entry.onnx:
        why = "no plugin library was given"
    else:
        why = "the engine folder has no kernel (plugin) graph"
    _require_form(manifest, subset, PORTABLE_FORM, why)
    return PORTABLE_FORM, f"{why}, so the plugin-free DFT-as-matmul graph"


def _require_form(manifest: Manifest, subset: Subset, form: str, why: str) -> None:
    entry = manifest.entry(subset)
    if form not in entry.onnx:
        raise ManifestError(
            f"{manifest.path}: subset {subset_name(entry.subset)!r} has no {form!r} graph and {why}; "
            f"it has {', '.join(entry.onnx)} (binseg export writes every form)"
        )
