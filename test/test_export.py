"""`binseg export`: 7 subsets x 3 frequency forms, checked graphs, ORT == torch within 1e-4, and the
plugin-node (``kernel``) graphs wired exactly like the plugin-free ones."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import EXPORT_SIZE, frame_inputs, random_inputs
from onnx import helper, numpy_helper
from test_kernels import circular_taps

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.core.preprocess import prepare_images
from binseg_ros.engines.export import export_subset_onnx
from binseg_ros.engines.manifest import Manifest
from binseg_ros.errors import BackendError, InputError, ManifestError, ModalityError
from binseg_ros.forms import GRAPH_FORMS
from binseg_ros.hashing import sha256_file
from binseg_ros.kernels.plugin_identity import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from binseg_ros.modalities import CHANNELS, all_subsets, parse_subset, subset_name
from binseg_ros.model import SubsetGraph
from binseg_ros.model.frequency import FrequencySplit
from binseg_ros.model.normalization import Normalization

SUBSETS = all_subsets()
FORMS = ("matmul", "fft")  # the forms ONNX Runtime runs; "kernel" holds TensorRT plugin nodes


def test_manifest_lists_every_subset_with_hashes(engine_folder, checkpoint):
    manifest = Manifest.load(engine_folder.root)
    assert manifest == engine_folder
    assert set(manifest.subsets) == {subset_name(s) for s in SUBSETS}
    assert manifest.model == "binseg_s" and manifest.version == "test"
    assert manifest.input_size == EXPORT_SIZE
    assert manifest.weights.sha256 == sha256_file(checkpoint)
    assert manifest.normalization["thermal_min_std"] == pytest.approx(Normalization().thermal_min_std)
    for entry in manifest.subsets.values():
        assert set(entry.onnx) == set(GRAPH_FORMS)
        for ref in entry.onnx.values():
            assert ref.sha256 == sha256_file(manifest.root / ref.file)
    manifest.verify()


@pytest.mark.parametrize("form", GRAPH_FORMS)
@pytest.mark.parametrize("subset", SUBSETS, ids="+".join)
def test_graph_is_checked_static_and_contains_only_its_modalities(engine_folder, calibrated_net, subset, form):
    path = engine_folder.onnx_path(subset, form)
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(path)
    inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert inputs == {m: [1, CHANNELS[m], *EXPORT_SIZE] for m in subset}
    (output,) = model.graph.output
    assert output.name == "probability"
    assert [d.dim_value for d in output.type.tensor_type.shape.dim] == [1, 1, *EXPORT_SIZE]
    encoders = {name.split(".")[2] for name in (i.name for i in model.graph.initializer) if ".encoders." in name}
    assert encoders == set(subset)
    ops = {node.op_type for node in model.graph.node}
    if form == "fft":
        assert "DFT" in ops
    else:
        assert "DFT" not in ops  # TensorRT <= 11.1 cannot parse DFT
        assert not ops & {"Cos", "Sin"}  # DFT matrices were folded into initialisers
    plugins = [node for node in model.graph.node if node.op_type == PLUGIN_NAME]
    if form == "kernel":
        splits = sum(isinstance(module, FrequencySplit) for module in calibrated_net.modules())
        assert len(plugins) == splits  # one plugin node per decoder frequency branch
        for node in plugins:
            assert node.domain == PLUGIN_NAMESPACE and len(node.input) == 2 and len(node.output) == 2
            attributes = {a.name: helper.get_attribute_value(a).decode() for a in node.attribute}
            assert attributes == {"plugin_version": PLUGIN_VERSION, "plugin_namespace": PLUGIN_NAMESPACE}
    else:
        assert not plugins


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("subset", SUBSETS, ids="+".join)
def test_onnxruntime_matches_torch_on_random_and_real_inputs(engine_folder, calibrated_net, real_frames, subset, form):
    backend = OnnxRuntimeBackend(engine_folder, form)
    calibrated_net.set_frequency_form("fft")  # torch.fft is the reference for both graphs
    graph = SubsetGraph(calibrated_net, subset).eval()
    cases = [random_inputs(EXPORT_SIZE, seed=1)] + [
        prepare_images(frame_inputs(frame), EXPORT_SIZE) for frame in real_frames[:2]
    ]
    for case in cases:
        inputs = {m: case[m] for m in subset}
        with torch.no_grad():
            reference = graph(*(torch.from_numpy(inputs[m]) for m in subset))[0, 0].numpy()
        probability = backend.run(inputs)
        assert probability.shape == EXPORT_SIZE
        assert np.abs(probability - reference).max() <= 1e-4
        # Not saturated: the comparison exercises the sigmoid's sensitive range.
        assert np.mean((reference > 0.02) & (reference < 0.98)) > 0.05


def _reference_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The plugin graph with each plugin node replaced by what the plugin computes.

    ``low = K_H · x · K_W`` with circulant taps from the node's own ``sigma`` input (float64
    numpy, independent of the torch op) and ``high = x - low``, as plain MatMul/Sub nodes.
    """
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    nodes = []
    for index, node in enumerate(model.graph.node):
        if node.op_type != PLUGIN_NAME:
            nodes.append(node)
            continue
        x, sigma = node.input
        low, high = node.output
        _, channels, height, width = shapes[x]
        matrices = []
        for axis, n in (("h", height), ("w", width)):
            taps = np.stack([circular_taps(float(s), n) for s in constants[sigma]])
            circulant = taps[:, (np.arange(n)[:, None] - np.arange(n)[None, :]) % n]
            name = f"reference_{index}_{axis}"
            model.graph.initializer.append(numpy_helper.from_array(circulant.astype(np.float32), name))
            matrices.append(name)
        assert constants[sigma].shape == (channels,)
        nodes += [
            helper.make_node("MatMul", [matrices[0], x], [f"reference_{index}_rows"]),
            helper.make_node("MatMul", [f"reference_{index}_rows", matrices[1]], [low]),
            helper.make_node("Sub", [x, low], [high]),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


@pytest.mark.parametrize("subset", [("rgb", "depth", "thermal"), ("thermal",)], ids="+".join)
def test_plugin_graph_is_the_plugin_free_graph_with_the_kernel_in_place(engine_folder, real_frames, subset):
    """The plugin nodes get the right tensors: x, its cutoffs, and low/high in that order."""
    plugin_graph = onnx.load(engine_folder.onnx_path(subset, "kernel"))
    session = ort.InferenceSession(
        _reference_nodes(plugin_graph).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    backend = OnnxRuntimeBackend(engine_folder, "matmul")
    inputs = prepare_images(frame_inputs(real_frames[1]), EXPORT_SIZE)
    case = {m: inputs[m] for m in subset}
    (probability,) = session.run(["probability"], case)
    assert np.abs(probability[0, 0] - backend.run(case)).max() <= 1e-4


def test_onnxruntime_refuses_the_plugin_form_with_a_clear_error(engine_folder):
    with pytest.raises(BackendError, match="TensorRT plugin nodes"):
        OnnxRuntimeBackend(engine_folder, "kernel")


def test_backend_rejects_wrong_shapes_and_unknown_subsets(engine_folder):
    backend = OnnxRuntimeBackend(engine_folder, "matmul")
    good = random_inputs(EXPORT_SIZE)
    with pytest.raises(InputError, match=r"depth: engine expects shape \(1, 1, 480, 640\), got \(1, 1, 240, 320\)"):
        backend.run({"rgb": good["rgb"], "depth": np.zeros((1, 1, 240, 320), np.float32)})
    with pytest.raises(InputError, match=r"rgb: engine expects shape \(1, 3, 480, 640\), got \(1, 1, 480, 640\)"):
        backend.run({"rgb": good["depth"]})
    with pytest.raises(InputError, match="rgb: engine expects floating-point input, got uint8"):
        backend.run({"rgb": good["rgb"].astype(np.uint8)})
    with pytest.raises(ModalityError, match="unknown modality 'lidar'"):
        backend.run({"lidar": good["depth"]})
    with pytest.raises(ModalityError, match="empty modality subset"):
        backend.run({})


def test_graphs_share_one_deduplicated_tensor_file(engine_folder):
    root = engine_folder.root
    graphs = sorted(root.glob("*.onnx"))
    assert len(graphs) == 7 * len(GRAPH_FORMS) and all(g.stat().st_size < 1_000_000 for g in graphs)
    referenced = 0
    for graph in graphs:
        model = onnx.load(graph, load_external_data=False)
        external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        assert external and {e.value for t in external for e in t.external_data if e.key == "location"} == {
            "tensors.bin"
        }
        referenced += sum(int(e.value) for t in external for e in t.external_data if e.key == "length")
    blob = (root / engine_folder.tensors.file).stat().st_size
    assert referenced > 3 * blob  # each shared tensor is stored once
    assert engine_folder.tensors.sha256 == sha256_file(root / "tensors.bin")


def test_manifest_refuses_a_changed_or_missing_file(engine_folder, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(engine_folder.root, copy)
    manifest = Manifest.load(copy)
    target = copy / manifest.entry(parse_subset("thermal")).onnx["matmul"].file
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(ManifestError, match=r"thermal\.matmul\.onnx does not match its recorded sha256"):
        manifest.verify()
    target.unlink()
    with pytest.raises(ManifestError, match=r"thermal\.matmul\.onnx is missing"):
        manifest.verify()
    with pytest.raises(ManifestError, match="no engine for subset 'rgb'"):
        Manifest(copy, "m", "v", manifest.weights, manifest.tensors, (64, 64), {}, 20, {}).entry(parse_subset("rgb"))


@pytest.mark.parametrize(
    ("subset", "size", "error", "message"),
    [
        ("rgb+sonar", (64, 64), ModalityError, "unknown modality 'sonar'"),
        ("", (64, 64), ModalityError, "empty modality subset"),
        ("rgb", (16, 64), InputError, "both ≥ 32"),
        ("rgb", (64,), InputError, r"\(height, width\)"),
    ],
)
def test_export_errors_name_the_problem(calibrated_net, tmp_path, subset, size, error, message):
    with pytest.raises(error, match=message):
        export_subset_onnx(calibrated_net, subset, size, "matmul", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_and_its_errors(tmp_path, capsys):
    from binseg_ros.cli import main

    assert (
        main(
            [
                "export",
                "--out",
                str(tmp_path),
                "--size",
                "64x96",
                "--subsets",
                "thermal,depth+rgb",
                "--forms",
                "matmul",
                "--quiet",
            ]
        )
        == 0
    )
    manifest = Manifest.load(tmp_path / "binseg_s")
    assert set(manifest.subsets) == {"thermal", "rgb+depth"} and manifest.version == "untrained"
    assert not (tmp_path / "untrained.pt").exists()  # scratch weights never land next to the engines
    manifest.verify()
    assert "rgb+depth" in capsys.readouterr().out

    assert main(["export", "--out", str(tmp_path), "--subsets", "rgb+lidar", "--quiet"]) == 2
    assert "unknown modality 'lidar'" in capsys.readouterr().err
    assert main(["export", "--size", "480by640"]) == 2  # argparse's errors too: main returns, never exits
    assert "HEIGHTxWIDTH" in capsys.readouterr().err


def test_torch_backend_matches_onnxruntime(engine_folder, real_frames):
    from binseg_ros.backends.factory import create_backend

    torch_backend = create_backend("torch", engine_folder)
    onnx_backend = create_backend("auto", engine_folder)
    assert (torch_backend.name, onnx_backend.name) == ("torch", "onnxruntime")
    inputs = prepare_images(frame_inputs(real_frames[3]), EXPORT_SIZE)
    for subset in (("rgb", "depth", "thermal"), ("thermal",)):
        case = {m: inputs[m] for m in subset}
        assert np.abs(torch_backend.run(case) - onnx_backend.run(case)).max() <= 1e-4
    with pytest.raises(InputError, match="depth: engine expects shape"):
        torch_backend.run({"depth": inputs["depth"][:, :, :100]})


def test_backend_factory_errors(engine_folder, monkeypatch):
    from binseg_ros.backends.factory import create_backend
    from binseg_ros.errors import BackendError

    monkeypatch.setenv("BINSEG_TENSORRT", "tensorrt")  # the full TensorRT, even where TensorRT-RTX is installed

    with pytest.raises(BackendError, match="unknown backend 'openvino'"):
        create_backend("openvino", engine_folder)
    if importlib.util.find_spec("tensorrt") is None:  # where it is installed, test_tensorrt.py runs it
        with pytest.raises(BackendError, match="the tensorrt backend needs the TensorRT Python package"):
            create_backend("tensorrt", engine_folder)


@pytest.mark.parametrize("subset", SUBSETS, ids="+".join)
def test_fp16_graph_computes_in_fp16_behind_fp32_inputs_and_output(engine_folder, subset):
    model = onnx.load(engine_folder.onnx_path(subset, "matmul-fp16"), load_external_data=False)
    assert {i.type.tensor_type.elem_type for i in model.graph.input} == {onnx.TensorProto.FLOAT}
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = {t.name: t.data_type for t in model.graph.initializer if t.name.endswith(".weight")}
    assert weights and set(weights.values()) == {onnx.TensorProto.FLOAT16}, weights
    casts = {helper.get_attribute_value(n.attribute[0]) for n in model.graph.node if n.op_type == "Cast"}
    assert {onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT} <= casts  # fp32 islands, explicitly
    reference = OnnxRuntimeBackend(engine_folder, "matmul")
    half = OnnxRuntimeBackend(engine_folder, "matmul-fp16")
    inputs = {m: a for m, a in random_inputs(EXPORT_SIZE, seed=3).items() if m in subset}
    full, lower = reference.run(inputs), half.run(inputs)
    assert lower.dtype == np.float32 and lower.shape == full.shape
    assert np.abs(lower - full).mean() <= 1e-2, np.abs(lower - full).mean()
