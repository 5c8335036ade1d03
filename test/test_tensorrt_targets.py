"""The TensorRT rules that need no TensorRT, per flavour and generation: which TensorRT is
imported, what each can build (typing, precisions, plugins, DFT, ahead-of-time targets), and
the graphs refused before any ONNX parser sees them. The flavours are values here, so these run
everywhere; ``test_tensorrt_rtx.py`` runs the same rules against the real TensorRT-RTX.
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
from conftest import REPO
from onnx import TensorProto, helper

from binseg_ros.engines.tensorrt import imports, rules, targets
from binseg_ros.engines.tensorrt.targets import FLAVOUR_ENV, FLAVOURS, Flavour
from binseg_ros.errors import BackendError

TRT_10 = Flavour("tensorrt", "10.3.0.30")  # JetPack 6
TRT_10_16 = Flavour("tensorrt", "10.16.0.1")  # JetPack 7.2
TRT_11 = Flavour("tensorrt", "11.0.0.5")
TRT_11_2 = Flavour("tensorrt", "11.2.0.1")
RTX = Flavour("tensorrt_rtx", "1.7.1.116")
SHIPPED = REPO / "engines" / "binseg_s"


def tiny_onnx(path: Path, quantized: bool, in_subgraph: bool = False) -> Path:
    """``y = relu(x)``, optionally through a QuantizeLinear/DequantizeLinear pair (in an If branch)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    initializers = [
        helper.make_tensor("scale", TensorProto.FLOAT, [], [0.05]),
        helper.make_tensor("zero", TensorProto.INT8, [], [0]),
    ]
    if not quantized:
        nodes = [helper.make_node("Relu", ["x"], ["y"])]
    elif not in_subgraph:
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"]),
            helper.make_node("Relu", ["dq"], ["y"]),
        ]
    else:
        out = helper.make_tensor_value_info("branch", TensorProto.FLOAT, [1, 4])
        then = helper.make_graph(
            [
                helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"]),
                helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["branch"]),
            ],
            "then",
            [],
            [out],
        )
        other = helper.make_graph([helper.make_node("Identity", ["x"], ["branch"])], "else", [], [out])
        initializers.append(helper.make_tensor("flag", TensorProto.BOOL, [], [True]))
        nodes = [
            helper.make_node("If", ["flag"], ["chosen"], then_branch=then, else_branch=other),
            helper.make_node("Relu", ["chosen"], ["y"]),
        ]
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def test_the_flavour_is_chosen_by_the_environment_when_set(monkeypatch):
    monkeypatch.setenv(FLAVOUR_ENV, "tensorrt8")
    with pytest.raises(BackendError, match=r"BINSEG_TENSORRT must be one of tensorrt, tensorrt_rtx or unset"):
        imports.import_tensorrt()
    for name in FLAVOURS:
        monkeypatch.setenv(FLAVOUR_ENV, name)
        monkeypatch.setitem(sys.modules, name, None)  # only the named one is tried
        with pytest.raises(BackendError, match=rf"\(import {name} failed: ") as refused:
            imports.import_tensorrt()
        assert str(refused.value).count(" failed: ") == 1


@pytest.mark.parametrize(
    ("flavour", "precision", "expected"),
    [
        (TRT_10, "fp16", (False, ("FP16",))),
        (TRT_10, "fp32", (False, ())),
        (TRT_10, "int8", (False, ("INT8",))),
        (TRT_10_16, "fp16", (False, ("FP16",))),
        (TRT_11, "fp32", (True, ())),
        (TRT_11, "fp16", (True, ())),  # from the fp16-typed graph, no flag
        (RTX, "fp16", (True, ())),
        (TRT_11, "int8", (True, ())),
        (Flavour("tensorrt", "12.0.0"), "fp32", (True, ())),
        (RTX, "fp32", (True, ())),
    ],
)
def test_builder_settings_per_tensorrt_flavour_and_generation(flavour, precision, expected):
    assert rules.builder_settings(flavour, precision) == expected


def test_what_strongly_typed_tensorrt_cannot_build_is_refused_with_the_reason():
    with pytest.raises(
        BackendError, match=r"int8 is not available on TensorRT-RTX 1.7.1.116: its INT8 quantizes weights"
    ):
        rules.builder_settings(RTX, "int8")
    with pytest.raises(BackendError, match=r"TensorRT 8.6.1 is too old"):
        rules.builder_settings(Flavour("tensorrt", "8.6.1"), "fp32")
    with pytest.raises(BackendError, match="cannot read the tensorrt version 'unknown'"):
        rules.builder_settings(Flavour("tensorrt", "unknown"), "fp32")


def test_what_each_flavour_can_do():
    assert [f.strongly_typed for f in (TRT_10, TRT_10_16, TRT_11, RTX)] == [False, False, True, True]
    assert [f.parses_dft for f in (TRT_10_16, TRT_11, TRT_11_2, RTX)] == [False, False, True, False]
    assert [f.takes_plugins for f in (TRT_10, TRT_11, RTX)] == [True, True, False]
    assert [f.builds_ahead_of_time for f in (TRT_10, TRT_11, RTX)] == [False, False, True]
    assert [f.keeps_timing_cache for f in (TRT_10, TRT_11, RTX)] == [True, True, False]
    assert (str(TRT_10), str(RTX)) == ("TensorRT 10.3.0.30", "TensorRT-RTX 1.7.1.116")


def test_ahead_of_time_targets():
    named = ("7.5", "8.0", "8.6", "8.9", "12.0", "12.1")
    target = targets.ahead_of_time_target(RTX, "8.9", named)
    assert target.ahead_of_time and str(target) == "TensorRT-RTX 1.7.1.116, ahead of time for compute capability 8.9"
    with pytest.raises(BackendError, match=r"does not build for compute capability 9.0 .*targets 7.5, 8.0"):
        targets.ahead_of_time_target(RTX, "9.0", named)
    for flavour in (TRT_10, TRT_11):  # full TensorRT builds for the local GPU only
        with pytest.raises(BackendError, match=r"builds plans for the GPU of the machine it runs on only.*without "):
            targets.ahead_of_time_target(flavour, "8.7", ())
    assert [targets.capability_member(c) for c in ("7.5", "8.9", "12.1")] == ["SM75", "SM89", "SM121"]
    assert [targets.member_capability(m) for m in ("SM75", "SM89", "SM121")] == ["7.5", "8.9", "12.1"]
    assert targets.require_compute_capability("12.0") == "12.0"
    for bad in ("sm_89", "89", "8.9.1", ""):
        with pytest.raises(BackendError, match=r"written major\.minor, like 8\.9"):
            targets.require_compute_capability(bad)


def test_graph_ops_count_the_graph_and_its_subgraphs(tmp_path):
    qdq = {("", "QuantizeLinear"): 1, ("", "DequantizeLinear"): 1}
    assert rules.graph_ops(tiny_onnx(tmp_path / "plain.onnx", quantized=False)) == {("", "Relu"): 1}
    assert rules.graph_ops(tiny_onnx(tmp_path / "qdq.onnx", quantized=True)) == {**qdq, ("", "Relu"): 1}
    in_if = rules.graph_ops(tiny_onnx(tmp_path / "if.onnx", quantized=True, in_subgraph=True))
    assert in_if == {**qdq, ("", "If"): 1, ("", "Identity"): 1, ("", "Relu"): 1}


def test_int8_without_qdq_is_refused_before_parsing(tmp_path):
    plain = tiny_onnx(tmp_path / "rgb.matmul.onnx", quantized=False)
    quantized = tiny_onnx(tmp_path / "qdq.onnx", quantized=True)
    with pytest.raises(BackendError, match=r"int8 needs an explicitly quantized graph .*TensorRT 11 removes it"):
        rules.check_graph(plain, TRT_10, "int8")
    rules.check_graph(quantized, TRT_10, "int8")
    for precision in ("fp16", "fp32"):
        rules.check_graph(plain, TRT_10, precision)


def test_plugin_and_dft_graphs_are_refused_where_the_flavour_cannot_take_them():
    """The shipped exports: kernel = plugin nodes, fft = DFT, matmul = neither."""
    kernel, fft, matmul = (SHIPPED / f"rgb.{form}.onnx" for form in ("kernel", "fft", "matmul"))
    with pytest.raises(
        BackendError, match=r"TensorRT-RTX 1.7.1.116 has no plugin layers.*binseg::BinsegFrequencySplit"
    ):
        rules.check_graph(kernel, RTX, "fp32")
    for flavour in (TRT_10, TRT_11):
        rules.check_graph(kernel, flavour, "fp32")
    for flavour in (RTX, TRT_10_16, TRT_11):
        with pytest.raises(BackendError, match=r"cannot parse the ONNX DFT operator .*build the 'matmul' graph"):
            rules.check_graph(fft, flavour, "fp32")
    rules.check_graph(fft, TRT_11_2, "fp32")
    for flavour in (RTX, TRT_10, TRT_11):
        rules.check_graph(matmul, flavour, "fp32")
