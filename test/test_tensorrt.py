"""TensorRT backend and plan builder, for both flavours (``tensorrt``, ``tensorrt_rtx``).

Everywhere: the modules import without TensorRT, ``auto`` picks TensorRT only with TensorRT and
a GPU, a missing TensorRT is a clear error, and the rules that need no TensorRT besides those of
``test_tensorrt_targets.py`` (the precision name, the graph form per flavour, the plan
folder). Where TensorRT and a GPU exist: fp32 plans match ONNX Runtime within 1e-3, through the
CUDA graph too, a plan TensorRT refuses is rebuilt, and ``binseg build`` (``run_build``) builds
then finds the plans. The real TensorRT-RTX without a GPU: ``test_tensorrt_rtx.py``.
"""

from __future__ import annotations

import importlib.util
import logging
import pkgutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import REPO, random_inputs
from test_tensorrt_targets import RTX, TRT_10, TRT_11

import binseg_ros.engines.tensorrt
from binseg_ros.backends.factory import create_backend, resolve, tensorrt_usable
from binseg_ros.cli.build import run_build
from binseg_ros.engines.manifest import FileRef, Manifest, SubsetEntry
from binseg_ros.engines.tensorrt import imports, loading, rules
from binseg_ros.engines.tensorrt.plan_cache import (
    PLAN_CACHE_ENV,
    PlanCache,
    PlanKey,
    default_plan_dir,
    model_digest,
)
from binseg_ros.engines.tensorrt.targets import FLAVOUR_ENV, FLAVOURS
from binseg_ros.errors import BackendError, ManifestError
from binseg_ros.modalities import parse_subset

HAVE_TENSORRT = any(find_spec(name) is not None for name in FLAVOURS)
needs_tensorrt = pytest.mark.skipif(not HAVE_TENSORRT, reason="needs TensorRT and a CUDA GPU")
needs_gpu = pytest.mark.skipif(imports.cuda_device_count() == 0, reason="needs a CUDA GPU")


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Neither flavour importable in this process (``None`` in ``sys.modules`` stops an import)."""
    monkeypatch.delenv(FLAVOUR_ENV, raising=False)
    for name in FLAVOURS:
        monkeypatch.setitem(sys.modules, name, None)


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
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'tensorrt_rtx', 'cuda')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_auto_is_onnxruntime_without_tensorrt(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name in FLAVOURS else real(name, *args)
    )
    assert not tensorrt_usable()
    assert resolve("auto") == "onnxruntime"
    assert resolve("tensorrt") == "tensorrt"  # asked for by name, it is not replaced


@pytest.mark.skipif(imports.cuda_device_count() > 0, reason="a CUDA GPU is visible here")
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_auto_needs_a_gpu_besides_tensorrt(monkeypatch, flavour):
    """Either flavour's package present (only find_spec is told so) but no GPU: still ONNX Runtime."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: object() if name == flavour else None if name in FLAVOURS else real(name, *args),
    )
    assert resolve("auto") == "onnxruntime"


def test_tensorrt_backend_without_tensorrt_is_a_clear_error(tmp_path, no_tensorrt):
    with pytest.raises(BackendError, match=r"the tensorrt backend needs the TensorRT Python package .*onnxruntime"):
        create_backend("tensorrt", tiny_manifest(tmp_path))
    from binseg_ros.backends.tensorrt import TensorRTBackend

    with pytest.raises(BackendError, match=r"import tensorrt failed.*import tensorrt_rtx failed.*TensorRT for RTX"):
        TensorRTBackend(tiny_manifest(tmp_path))


def test_a_precision_name_is_checked_where_it_comes_in():
    assert [rules.require_precision(p) for p in ("fp16", "fp32", "int8")] == list(rules.PRECISIONS)
    with pytest.raises(BackendError, match="precision must be one of fp16, fp32, int8, got 'bf16'"):
        rules.require_precision("bf16")
    from binseg_ros.backends.tensorrt import TensorRTBackend

    with pytest.raises(BackendError, match="precision must be one of"):  # before TensorRT is looked for
        TensorRTBackend(tiny_manifest(Path(".")), precision="bf16")


def test_kernel_graph_only_with_a_plugin_library(tmp_path):
    both = tiny_manifest(tmp_path, ("matmul", "kernel"))
    assert rules.choose_form(both, parse_subset("rgb"), TRT_10, "fp16", plugin_loaded=True)[0] == "kernel"
    form, reason = rules.choose_form(both, parse_subset("rgb"), TRT_10, "fp16", plugin_loaded=False)
    assert form == "matmul" and "no plugin library" in reason
    form, reason = rules.choose_form(both, parse_subset("rgb"), RTX, "fp32", plugin_loaded=False)
    assert form == "matmul" and "TensorRT-RTX 1.7.1.116 has no plugin layers" in reason
    matmul_only = tiny_manifest(tmp_path, ("matmul",))
    form, reason = rules.choose_form(matmul_only, parse_subset("rgb"), TRT_10, "fp16", plugin_loaded=True)
    assert form == "matmul" and "no kernel" in reason
    kernel_only = tiny_manifest(tmp_path, ("kernel",))
    with pytest.raises(ManifestError, match="no 'matmul' graph and no plugin library was given"):
        rules.choose_form(kernel_only, parse_subset("rgb"), TRT_10, "fp32", plugin_loaded=False)
    with pytest.raises(ManifestError, match=r"no 'matmul' graph and TensorRT-RTX 1\.7\.1\.116 has no plugin layers"):
        rules.choose_form(kernel_only, parse_subset("rgb"), RTX, "fp32", plugin_loaded=False)
    with pytest.raises(ManifestError, match="no engine for subset 'depth'"):
        rules.choose_form(both, parse_subset("depth"), TRT_10, "fp16", plugin_loaded=True)


def test_strongly_typed_fp16_builds_the_fp16_typed_graph(tmp_path):
    forms = tiny_manifest(tmp_path, ("matmul", "kernel", "matmul-fp16"))
    for flavour in (TRT_11, RTX):
        form, reason = rules.choose_form(forms, parse_subset("rgb"), flavour, "fp16", plugin_loaded=False)
        assert form == "matmul-fp16" and "strongly typed" in reason
        assert rules.choose_form(forms, parse_subset("rgb"), flavour, "fp32", plugin_loaded=False)[0] == "matmul"
    assert rules.choose_form(forms, parse_subset("rgb"), TRT_10, "fp16", plugin_loaded=False)[0] == "matmul"
    with pytest.raises(ManifestError, match=r"no 'matmul-fp16' graph and TensorRT 11.* strongly typed.*binseg export"):
        rules.choose_form(tiny_manifest(tmp_path, ("matmul",)), parse_subset("rgb"), TRT_11, "fp16", False)


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


def cuda_runtime_reporting(count_error: Any, driver_version: int) -> SimpleNamespace:
    """cuda-python 13's runtime bindings as they answer on another machine: its
    ``cudaGetDeviceCount`` error and its driver's CUDA version (0: no driver installed), in the
    real bindings' error codes."""
    from cuda.bindings import runtime

    ok = runtime.cudaError_t.cudaSuccess
    return SimpleNamespace(
        cudaError_t=runtime.cudaError_t,
        cudaGetDeviceCount=lambda: (count_error, 1 if count_error == ok else None),
        cudaDriverGetVersion=lambda: (ok, driver_version),
        cudaRuntimeGetVersion=lambda: (ok, 13000),
    )


@pytest.mark.parametrize(
    ("error", "driver", "count"),
    [
        ("cudaSuccess", 13000, 1),
        ("cudaErrorNoDevice", 13000, 0),
        ("cudaErrorInsufficientDriver", 0, 0),  # no NVIDIA driver at all: no GPU
    ],
)
def test_a_machine_without_a_device_or_a_driver_has_no_gpu(error, driver, count):
    from cuda.bindings import runtime

    assert imports.visible_devices(cuda_runtime_reporting(getattr(runtime.cudaError_t, error), driver)) == count


def test_other_cuda_failures_are_not_called_no_gpu(monkeypatch, caplog):
    """A driver older than cuda-python's CUDA major version (cuda-python 13 on JetPack 6's CUDA
    12.6 driver) says what to install; another CUDA error is named. ``auto`` logs it and uses
    ONNX Runtime."""
    from cuda.bindings import runtime

    too_old = cuda_runtime_reporting(runtime.cudaError_t.cudaErrorInsufficientDriver, 12060)
    with pytest.raises(BackendError) as refused:
        imports.visible_devices(too_old)
    (line,) = str(refused.value).splitlines()
    assert line.startswith("the installed cuda-python is built for CUDA 13.0, which needs an NVIDIA driver for CUDA 13")
    assert "driver is for CUDA 12.6: install the cuda-python that matches" in line and "cuda-python==12.*" in line
    busy = cuda_runtime_reporting(runtime.cudaError_t.cudaErrorDevicesUnavailable, 13000)
    with pytest.raises(BackendError, match=r"CUDA call cudaGetDeviceCount failed: cudaErrorDevicesUnavailable \(46\)"):
        imports.visible_devices(busy)
    monkeypatch.setattr(imports, "import_cudart", lambda: too_old)
    imports.cuda_device_count.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            assert imports.cuda_device_count() == 0
    finally:
        imports.cuda_device_count.cache_clear()
    assert "needs an NVIDIA driver for CUDA 13" in caplog.text


class UncapturableContext:
    """An execution context as TensorRT-RTX gives one it cannot capture on a stream (no context
    can be created without a GPU); it records the streams it was asked about."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def is_stream_capturable(self, stream: int) -> bool:
        self.asked.append(stream)
        return False


def test_a_context_tensorrt_rtx_cannot_capture_runs_without_a_cuda_graph(caplog):
    from cuda.bindings import runtime

    from binseg_ros.backends.tensorrt import _SubsetEngine

    context = UncapturableContext()
    engine = SimpleNamespace(num_io_tensors=0, create_execution_context=lambda: context)
    subset_engine = _SubsetEngine(None, runtime, engine, "rgb.matmul.fp16", 0)
    with caplog.at_level(logging.INFO):
        subset_engine.capture()
    assert context.asked == [0] and subset_engine.capture_tried and subset_engine.graph_exec is None
    (line,) = [r.getMessage() for r in caplog.records if "rgb.matmul.fp16" in r.getMessage()]
    assert "cannot be captured" in line and "running it without a CUDA graph" in line
    assert "cudaStreamBeginCapture" not in line


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
    _trt, target = imports.check_target("fp32")
    result = loading.ensure_plan(fast_engine, parse_subset("thermal"), cache, target, "fp32", None, False)
    slot = result.slot
    key = PlanKey.for_target(target, "fp32", model_digest(fast_engine, parse_subset("thermal"), "matmul"))
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
