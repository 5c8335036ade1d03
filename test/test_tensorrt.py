"""TensorRT backend and plan builder.

Everywhere: the modules import without TensorRT, ``auto`` picks TensorRT only with TensorRT and
a GPU, a missing TensorRT is a clear error, and the rules that need no TensorRT (int8 only for
Q/DQ graphs, the flags of each TensorRT generation, the graph form, the plan folder). Where
TensorRT and a GPU exist: fp32 plans match ONNX Runtime within 1e-3, through the CUDA graph too,
a plan TensorRT refuses is rebuilt, and ``binseg build`` (``run_build``) builds then finds the plans.
"""

from __future__ import annotations

import importlib.util
import pkgutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import REPO, random_inputs
from onnx import TensorProto, helper

import binseg_ros.engines.tensorrt
from binseg_ros.backends.factory import create_backend, resolve, tensorrt_usable
from binseg_ros.cli.build import run_build
from binseg_ros.engines.manifest import FileRef, Manifest, SubsetEntry
from binseg_ros.engines.tensorrt import imports, loading, rules
from binseg_ros.engines.tensorrt.plan_cache import PLAN_CACHE_ENV, PlanCache, default_plan_dir, model_digest
from binseg_ros.errors import BackendError, ManifestError
from binseg_ros.modalities import parse_subset

HAVE_TENSORRT = find_spec("tensorrt") is not None
needs_tensorrt = pytest.mark.skipif(not HAVE_TENSORRT, reason="needs TensorRT and a CUDA GPU")
needs_gpu = pytest.mark.skipif(imports.cuda_device_count() == 0, reason="needs a CUDA GPU")
without_tensorrt = pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed here")


def tiny_manifest(root: Path, forms: tuple[str, ...] = ("matmul",)) -> Manifest:
    """A manifest object (no files behind it) for the checks that only read its entries."""
    return Manifest(
        root=root,
        model="tiny",
        version="test",
        weights=FileRef("weights.pt", "0" * 64),
        tensors=FileRef("tensors.bin", "0" * 64),
        input_size=(96, 128),
        normalization={},
        opset=20,
        subsets={"rgb": SubsetEntry(("rgb",), {form: FileRef(f"rgb.{form}.onnx", "0" * 64) for form in forms})},
    )


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


# --- everywhere -------------------------------------------------------------------------------


TENSORRT_MODULES = sorted(
    f"binseg_ros.engines.tensorrt.{m.name}" for m in pkgutil.iter_modules(binseg_ros.engines.tensorrt.__path__)
)


def test_importing_the_tensorrt_modules_imports_neither_tensorrt_nor_cuda():
    assert "binseg_ros.engines.tensorrt.loading" in TENSORRT_MODULES
    modules = ["binseg_ros.backends.factory", "binseg_ros.backends.tensorrt", "binseg_ros.cli.build", *TENSORRT_MODULES]
    code = (
        "import sys\n"
        f"import {', '.join(modules)}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'cuda')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@without_tensorrt
def test_auto_is_onnxruntime_without_tensorrt():
    assert not tensorrt_usable()
    assert resolve("auto") == "onnxruntime"
    assert resolve("tensorrt") == "tensorrt"  # asked for by name, it is not replaced


@pytest.mark.skipif(imports.cuda_device_count() > 0, reason="a CUDA GPU is visible here")
def test_auto_needs_a_gpu_besides_tensorrt(monkeypatch):
    """TensorRT's package present (only find_spec is told so) but no GPU: still ONNX Runtime."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: object() if name == "tensorrt" else real(name, *args)
    )
    assert resolve("auto") == "onnxruntime"


@without_tensorrt
def test_tensorrt_backend_without_tensorrt_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match=r"the tensorrt backend needs the TensorRT Python package .*onnxruntime"):
        create_backend("tensorrt", tiny_manifest(tmp_path))
    from binseg_ros.backends.tensorrt import TensorRTBackend

    with pytest.raises(BackendError, match=r"import tensorrt failed"):
        TensorRTBackend(tiny_manifest(tmp_path))


def test_qdq_nodes_are_found_in_the_graph_and_its_subgraphs(tmp_path):
    assert rules.quantization_nodes(tiny_onnx(tmp_path / "plain.onnx", quantized=False)) == 0
    assert rules.quantization_nodes(tiny_onnx(tmp_path / "qdq.onnx", quantized=True)) == 2
    assert rules.quantization_nodes(tiny_onnx(tmp_path / "if.onnx", quantized=True, in_subgraph=True)) == 2


def test_int8_without_qdq_is_refused_before_tensorrt(tmp_path):
    plain = tiny_onnx(tmp_path / "rgb.matmul.onnx", quantized=False)
    quantized = tiny_onnx(tmp_path / "qdq.onnx", quantized=True)
    with pytest.raises(BackendError, match=r"int8 needs an explicitly quantized graph .*TensorRT 11 removes it"):
        rules.check_precision(plain, "int8")
    rules.check_precision(quantized, "int8")
    for precision in ("fp16", "fp32"):
        rules.check_precision(plain, precision)
    # ensure_plan checks first: here, without TensorRT, the key or a build would raise "import tensorrt failed".
    with pytest.raises(BackendError, match="int8 needs an explicitly quantized graph"):
        loading.ensure_plan(
            tiny_manifest(tmp_path), parse_subset("rgb"), PlanCache(tmp_path / "plans"), "int8", False, False
        )


def test_a_precision_name_is_checked_where_it_comes_in():
    assert [rules.require_precision(p) for p in ("fp16", "fp32", "int8")] == list(rules.PRECISIONS)
    with pytest.raises(BackendError, match="precision must be one of fp16, fp32, int8, got 'bf16'"):
        rules.require_precision("bf16")
    from binseg_ros.backends.tensorrt import TensorRTBackend

    with pytest.raises(BackendError, match="precision must be one of"):  # before TensorRT is looked for
        TensorRTBackend(tiny_manifest(Path(".")), precision="bf16")


@pytest.mark.parametrize(
    ("major", "precision", "expected"),
    [
        (10, "fp16", (False, ("FP16",))),
        (10, "fp32", (False, ())),
        (10, "int8", (False, ("INT8",))),
        (11, "fp32", (True, ())),
        (11, "int8", (True, ())),
        (12, "fp32", (True, ())),
    ],
)
def test_builder_settings_per_tensorrt_generation(major, precision, expected):
    assert rules.builder_settings(major, precision) == expected


def test_fp16_on_strongly_typed_tensorrt_and_old_tensorrt_are_refused():
    with pytest.raises(
        BackendError, match=r"fp16 is not available on TensorRT 11.*fp16-typed ONNX graph.*use precision fp32"
    ):
        rules.builder_settings(11, "fp16")
    with pytest.raises(BackendError, match=r"TensorRT 8.x is too old"):
        rules.builder_settings(8, "fp32")
    assert imports.tensorrt_major("10.3.0.30") == 10
    with pytest.raises(BackendError, match="cannot read the TensorRT version"):
        imports.tensorrt_major("unknown")


def test_kernel_graph_only_with_a_plugin_library(tmp_path):
    both = tiny_manifest(tmp_path, ("matmul", "kernel"))
    assert rules.choose_form(both, parse_subset("rgb"), plugin_loaded=True)[0] == "kernel"
    form, reason = rules.choose_form(both, parse_subset("rgb"), plugin_loaded=False)
    assert form == "matmul" and "no plugin library" in reason
    form, reason = rules.choose_form(tiny_manifest(tmp_path, ("matmul",)), parse_subset("rgb"), plugin_loaded=True)
    assert form == "matmul" and "no kernel" in reason
    with pytest.raises(ManifestError, match="no 'matmul' graph and no plugin library was given"):
        rules.choose_form(tiny_manifest(tmp_path, ("kernel",)), parse_subset("rgb"), plugin_loaded=False)
    with pytest.raises(ManifestError, match="no engine for subset 'depth'"):
        rules.choose_form(both, parse_subset("depth"), plugin_loaded=True)


def test_plan_folder_is_per_model_under_the_cache_root(tmp_path, monkeypatch):
    manifest = tiny_manifest(tmp_path)
    monkeypatch.delenv(PLAN_CACHE_ENV, raising=False)
    assert default_plan_dir(manifest) == Path.home() / ".cache" / "binseg_ros" / "plans" / "tiny"
    monkeypatch.setenv(PLAN_CACHE_ENV, str(tmp_path / "plans"))
    assert default_plan_dir(manifest) == tmp_path / "plans" / "tiny"


def test_cuda_call_returns_values_and_names_the_failed_call():
    from cuda.bindings import runtime

    ok, bad = runtime.cudaError_t.cudaSuccess, runtime.cudaError_t.cudaErrorInvalidValue
    assert imports.cuda_call((ok,), "cudaFree") is None
    assert imports.cuda_call((ok, 7), "cudaMalloc") == 7
    assert imports.cuda_call((ok, 1, 2), "two") == (1, 2)
    with pytest.raises(BackendError, match=r"CUDA call cudaMalloc\(64\) failed: cudaErrorInvalidValue"):
        imports.cuda_call((bad, None), "cudaMalloc(64)")


# --- with TensorRT and a GPU ------------------------------------------------------------------


def _inputs(manifest: Manifest, subset: tuple[str, ...], seed: int) -> dict[str, np.ndarray]:
    return {m: a for m, a in random_inputs(manifest.input_size, seed).items() if m in subset}


@needs_tensorrt
@needs_gpu
def test_fp32_plan_matches_onnxruntime_also_through_the_cuda_graph(fast_engine, tmp_path):
    from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
    from binseg_ros.backends.tensorrt import TensorRTBackend

    subset = ("rgb", "depth")
    reference = OnnxRuntimeBackend(fast_engine)
    with TensorRTBackend(fast_engine, precision="fp32", plan_cache=tmp_path) as backend:
        # Run 1 is the ordinary enqueue (then capture); runs 2-4 replay the graph with new inputs.
        for seed in (0, 1, 2, 0):
            inputs = _inputs(fast_engine, subset, seed)
            expected = reference.run(inputs)
            probability = backend.run(inputs)
            assert probability.shape == expected.shape and probability.dtype == np.float32
            assert np.abs(probability - expected).max() <= 1e-3, seed
        assert backend.engine(subset).graph_exec is not None, "the engine was not captured as a CUDA graph"
    assert (tmp_path / "rgb_depth.matmul.fp32.plan").is_file()
    assert list(tmp_path.glob("timing.*.cache")), "the timing cache was not saved"


@needs_tensorrt
@needs_gpu
def test_a_plan_tensorrt_refuses_is_rebuilt(fast_engine, tmp_path):
    from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
    from binseg_ros.backends.tensorrt import TensorRTBackend

    cache = PlanCache(tmp_path)
    result = loading.ensure_plan(fast_engine, parse_subset("thermal"), cache, "fp32", False, False)
    slot, _plan = result.slot, result.plan
    key = loading.target_key(model_digest(fast_engine, parse_subset("thermal"), "matmul"), "fp32")
    cache.store(slot, key, b"not a TensorRT plan")  # intact record and sha256: only TensorRT can tell
    inputs = _inputs(fast_engine, ("thermal",), 3)
    with TensorRTBackend(fast_engine, precision="fp32", plan_cache=tmp_path) as backend:
        assert np.abs(backend.run(inputs) - OnnxRuntimeBackend(fast_engine).run(inputs)).max() <= 1e-3
    rebuilt = cache.load(slot, key)
    assert rebuilt is not None and rebuilt != b"not a TensorRT plan"


@needs_tensorrt
@needs_gpu
def test_run_build_builds_then_finds_the_plans(fast_engine, tmp_path, capsys):
    assert run_build(fast_engine, "fp32", tmp_path, [parse_subset("thermal"), parse_subset("depth")], None) == 0
    first = capsys.readouterr().out
    assert "thermal.matmul.fp32" in first and "depth.matmul.fp32" in first and "built" in first
    assert run_build(fast_engine, "fp32", tmp_path, [parse_subset("thermal")], None) == 0
    second = capsys.readouterr().out
    assert "thermal.matmul.fp32" in second and "cached" in second and "built" not in second
