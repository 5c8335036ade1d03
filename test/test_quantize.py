"""``binseg quantize``: int8 Q/DQ graphs added beside an engine folder's graphs, which stay as
they were; the Q/DQ graphs run in ONNX Runtime and are what TensorRT builds at int8."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from test_tensorrt_targets import TRT_10

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.core.preprocess import prepare_images
from binseg_ros.datasets import load_frame
from binseg_ros.engines.manifest import Manifest
from binseg_ros.engines.quantize import INT8_FORM, calibration_frames, kept_float, quantize_engine_folder
from binseg_ros.engines.tensorrt import rules
from binseg_ros.errors import InputError
from binseg_ros.training.split import SPLITS, load_split


@pytest.fixture(scope="module")
def quantized(fast_engine, mm5_root, tmp_path_factory):
    """A copy of the small engine folder, before and after quantizing from three training frames."""
    root = tmp_path_factory.mktemp("quantize") / fast_engine.root.name
    shutil.copytree(fast_engine.root, root)
    before = Manifest.load(root)
    blob = (root / before.tensors.file).read_bytes()
    refs = [ref for entry in before.subsets.values() for ref in entry.onnx.values()]
    graphs = {ref.file: (root / ref.file).read_bytes() for ref in refs}
    frames = calibration_frames(mm5_root, load_split(SPLITS / "mm5.yaml").train_ids(), before.input_size, count=3)
    after = quantize_engine_folder(before, frames, progress=False)
    return before, after, blob, graphs


def test_the_folder_gains_an_int8_graph_per_subset_and_keeps_the_others(quantized):
    before, after, blob, graphs = quantized
    assert Manifest.load(after.root) == after
    after.verify()
    for name, entry in after.subsets.items():
        assert set(entry.onnx) == set(before.subsets[name].onnx) | {INT8_FORM}
    assert all((after.root / file).read_bytes() == data for file, data in graphs.items())
    assert (after.root / after.tensors.file).read_bytes()[: len(blob)] == blob  # offsets kept


def test_int8_graphs_quantize_convolutions_but_not_the_network_edges(quantized):
    _before, after, _blob, _graphs = quantized
    for entry in after.subsets.values():
        model = onnx.load(after.onnx_path(entry.subset, INT8_FORM), load_external_data=False)
        ops = [node.op_type for node in model.graph.node]
        assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
        dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
        convs = [node for node in model.graph.node if node.op_type == "Conv"]
        edges = set(kept_float(model))
        assert edges and all(not set(c.input) & dequantized for c in convs if c.name in edges)
        assert all(set(c.input) & dequantized for c in convs if c.name not in edges)
        assert not any(set(n.input) & dequantized for n in model.graph.node if n.op_type == "MatMul")
        rules.check_graph(after.onnx_path(entry.subset, INT8_FORM), TRT_10, "int8")  # TensorRT 10 takes it
        assert rules.choose_form(after, entry.subset, TRT_10, "int8", plugin_loaded=False)[0] == INT8_FORM


def test_onnx_runtime_runs_the_int8_graphs_close_to_fp32(quantized, mm5_root):
    _before, after, _blob, _graphs = quantized
    full, int8 = OnnxRuntimeBackend(after, "matmul"), OnnxRuntimeBackend(after, INT8_FORM)
    held_out = load_split(SPLITS / "mm5.yaml").held_out_ids()[0]  # calibrated on training frames only
    inputs = prepare_images(load_frame(mm5_root, held_out), after.input_size)
    for entry in after.subsets.values():
        feed = {m: inputs[m] for m in entry.subset}
        reference, result = full.run(feed), int8.run(feed)
        assert result.dtype == np.float32 and result.shape == reference.shape
        assert 0 < np.abs(result - reference).mean() <= 0.05  # quantized: not the same numbers, close ones


def test_calibration_needs_enough_training_frames(mm5_root):
    with pytest.raises(InputError, match="calibration needs 48 frames and the split has 2 training ids"):
        calibration_frames(mm5_root, ["1", "2"], (96, 128))
