"""The real TensorRT for RTX, on a machine without a GPU: every subset of the shipped engine
folder built ahead of time at fp32 (the ``matmul`` graphs) and fp16 (the fp16-typed
``matmul-fp16`` graphs) for compute capability 8.9 into a plan cache whose key says so, found
there the second time; and every refusal made before TensorRT's ONNX parser (which
aborts the process on a plugin node while a plugin library is loaded) could see the graph.

Skipped only where ``tensorrt_rtx`` cannot be imported; ``scripts/setup --dev`` installs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from test_tensorrt import cuda_runtime_reporting

from binseg_ros.backends.factory import create_backend
from binseg_ros.cli import main
from binseg_ros.engines.locate import open_engine_folder
from binseg_ros.engines.manifest import Manifest
from binseg_ros.engines.tensorrt.builder import build_plan
from binseg_ros.engines.tensorrt.imports import check_target, cuda_device_count
from binseg_ros.engines.tensorrt.loading import SubsetFailure, SubsetPlan, build_each, prepare_build
from binseg_ros.engines.tensorrt.plan_cache import model_digest
from binseg_ros.engines.tensorrt.plugin_library import load_plugin_library
from binseg_ros.engines.tensorrt.rules import Precision
from binseg_ros.engines.tensorrt.targets import AHEAD_OF_TIME, FLAVOUR_ENV
from binseg_ros.errors import BackendError
from binseg_ros.kernels.plugin_identity import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from binseg_ros.modalities import subset_name

tensorrt_rtx = pytest.importorskip("tensorrt_rtx", reason="needs TensorRT for RTX (scripts/setup --dev installs it)")

SHIPPED = REPO / "engines" / "binseg_s"
TARGET = "8.9"
no_gpu = pytest.mark.skipif(cuda_device_count() > 0, reason="a CUDA GPU is visible here")


@pytest.fixture(autouse=True)
def rtx(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorRT-RTX even where full TensorRT is installed beside it (which would be preferred)."""
    monkeypatch.setenv(FLAVOUR_ENV, "tensorrt_rtx")


@pytest.fixture(scope="module")
def shipped() -> Manifest:
    return open_engine_folder(SHIPPED)


def build_all(manifest: Manifest, cache: Path, precision: Precision = "fp32") -> list[SubsetPlan]:
    """``binseg build --precision P --compute-capability 8.9``'s work; a failure fails the test with its error."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FLAVOUR_ENV, "tensorrt_rtx")
        outcomes = list(build_each(prepare_build(manifest, precision, cache, None, None, TARGET)))
    failures = [f"{subset_name(o.subset)}: {o.error}" for o in outcomes if isinstance(o, SubsetFailure)]
    assert not failures, "\n".join(failures)  # parser errors come with every message the parser recorded
    return [o for o in outcomes if isinstance(o, SubsetPlan)]


@pytest.fixture(scope="module")
def aot_cache(shipped: Manifest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SubsetPlan]]:
    """Every shipped subset built ahead of time into an empty plan cache (about 20 s on 2 cores)."""
    cache = tmp_path_factory.mktemp("plans")
    return cache, build_all(shipped, cache)


def test_every_shipped_subset_builds_ahead_of_time(aot_cache, shipped):
    cache, plans = aot_cache
    assert [p.subset for p in plans] == [entry.subset for entry in shipped.subsets.values()]
    for plan in plans:
        assert plan.built and plan.form == "matmul" and plan.slot.endswith(".matmul.fp32"), plan
        assert (cache / f"{plan.slot}.plan").stat().st_size == plan.size > 1_000_000
    assert not list(cache.glob("timing.*")), "TensorRT-RTX keeps no timing cache"


def test_the_plan_key_records_flavour_version_and_the_ahead_of_time_target(aot_cache, shipped):
    cache, plans = aot_cache
    for plan in plans:
        key = json.loads((cache / f"{plan.slot}.json").read_text())["key"]
        assert key == {
            "gpu_name": AHEAD_OF_TIME,
            "compute_capability": TARGET,
            "tensorrt_flavour": "tensorrt_rtx",
            "tensorrt_version": tensorrt_rtx.__version__,
            "precision": "fp32",
            "onnx_sha256": model_digest(shipped, plan.subset, "matmul"),
            "plugin_sha256": None,  # a matmul plan has no plugin nodes
        }


def test_every_shipped_subset_builds_at_fp16_from_its_fp16_typed_graph(aot_cache, shipped):
    """Strongly typed: the fp16 plans come from the fp16-typed graphs. Their layer weights are
    half the size (the DFT matrices stay fp32), so each plan is smaller than its fp32 plan."""
    cache, fp32 = aot_cache
    fp16 = build_all(shipped, cache, "fp16")
    assert [p.subset for p in fp16] == [p.subset for p in fp32]
    for half, full in zip(fp16, fp32, strict=True):
        assert half.built and half.form == "matmul-fp16" and half.slot.endswith(".matmul-fp16.fp16"), half
        assert half.size < full.size, (half.slot, half.size, full.size)


def test_a_second_build_finds_every_plan_in_the_cache(aot_cache, shipped):
    cache, first = aot_cache
    again = build_all(shipped, cache)
    assert [(p.slot, p.size) for p in again] == [(p.slot, p.size) for p in first]
    assert not any(p.built for p in again)


@pytest.mark.parametrize(
    ("form", "refusal"),
    [
        ("fft", r"TensorRT-RTX .* cannot parse the ONNX DFT operator \(16 nodes; .*build the 'matmul' graph"),
        ("kernel", r"TensorRT-RTX .* has no plugin layers.*binseg::BinsegFrequencySplit.*build the plugin-free"),
    ],
)
def test_graphs_tensorrt_rtx_cannot_take_are_refused_before_parsing(form, refusal, capfd):
    _trt, target = check_target("fp32", TARGET)
    with pytest.raises(BackendError, match=refusal):
        build_plan(SHIPPED / f"thermal.{form}.onnx", target, "fp32", progress=False)
    assert "ModelImporter" not in capfd.readouterr().err, "the ONNX parser saw the graph"


def test_int8_is_refused_on_tensorrt_rtx_before_any_build(shipped, tmp_path):
    with pytest.raises(BackendError, match=r"int8 is not available on TensorRT-RTX .*quantizes weights only"):
        prepare_build(shipped, "int8", tmp_path, None, None, TARGET)
    assert not list(tmp_path.iterdir())


def test_a_compute_capability_tensorrt_rtx_does_not_target_is_refused(shipped, tmp_path):
    with pytest.raises(
        BackendError, match=r"does not build for compute capability 9\.0 .*targets 7\.5, 8\.0, 8\.6, 8\.9"
    ):
        prepare_build(shipped, "fp32", tmp_path, None, None, "9.0")


@no_gpu
def test_build_without_a_gpu_and_without_a_target_says_what_to_do(capsys):
    code = main(["build", "--engine-dir", str(SHIPPED), "--precision", "fp32"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("binseg build: error: no CUDA GPU is visible")
    assert "`binseg build --compute-capability 8.9` (one of 7.5, 8.0, 8.6, 8.9, 12.0, 12.1)" in line


def test_binseg_build_survives_a_plugin_library_on_tensorrt_rtx(tmp_path):
    """A process of its own, so an abort inside the parser would show as a signal, not end pytest.

    The library is never loaded on TensorRT-RTX, so a stand-in file proves it: loading it
    would fail every subset."""
    library = tmp_path / "libbinseg_trt_plugins.so"
    library.write_bytes(b"\x7fELF stand-in")
    command = [sys.executable, "-m", "binseg_ros.cli", "build", "--engine-dir", str(SHIPPED), "--precision", "fp32"]
    command += ["--subsets", "thermal", "--compute-capability", TARGET, "--cache", str(tmp_path / "plans")]
    result = subprocess.run(
        [*command, "--plugin-library", str(library)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "thermal.matmul.fp32" in result.stdout and "built" in result.stdout
    assert f"has no plugin layers: plugin library {library} is not loaded" in result.stderr


@no_gpu
def test_the_backend_with_a_plugin_library_refuses_cleanly_without_a_gpu(shipped, tmp_path):
    library = tmp_path / "libbinseg_trt_plugins.so"
    library.write_bytes(b"\x7fELF stand-in")
    with pytest.raises(BackendError, match=r"no CUDA GPU is visible .*use backend onnxruntime here"):
        create_backend("tensorrt", shipped, precision="fp32", plan_cache=tmp_path, plugin_library=library)


class ForeignCreator(tensorrt_rtx.IPluginCreatorV3One):
    """A creator registered under the frequency-split plugin's name by other code in the process."""

    def __init__(self) -> None:
        tensorrt_rtx.IPluginCreatorV3One.__init__(self)
        self.name, self.plugin_version, self.plugin_namespace = PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE
        self.field_names = tensorrt_rtx.PluginFieldCollection([])

    def create_plugin(self, name: str, fields: object, phase: object) -> None:
        raise NotImplementedError


def test_a_plugin_creator_registered_before_the_library_is_named_as_the_reason(tmp_path):
    """TensorRT's load_library returns None when one of the library's plugins is registered
    already: that must not be blamed on the library's exports or TensorRT version."""
    library = tmp_path / "libbinseg_trt_plugins.so"
    library.write_bytes(b"\x7fELF stand-in")
    registry = tensorrt_rtx.get_plugin_registry()
    creator = ForeignCreator()
    assert registry.register_creator(creator, PLUGIN_NAMESPACE)
    try:
        with pytest.raises(BackendError) as refused:
            load_plugin_library(library)
    finally:
        assert registry.deregister_creator(creator)
    message = str(refused.value)
    assert (
        f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME} version {PLUGIN_VERSION} is already registered in this process" in message
    )
    assert "by other code" in message and "getCreators" not in message


def test_a_cuda_python_newer_than_the_driver_is_not_called_no_gpu(monkeypatch):
    """cuda-python 13 on a CUDA 12 driver (JetPack 6) cannot count the GPUs; that is what to fix."""
    from cuda.bindings import runtime

    monkeypatch.setattr(
        "binseg_ros.engines.tensorrt.imports.import_cudart",
        lambda: cuda_runtime_reporting(runtime.cudaError_t.cudaErrorInsufficientDriver, 12060),
    )
    with pytest.raises(BackendError) as refused:
        check_target("fp32")
    (line,) = str(refused.value).splitlines()
    assert "cuda-python is built for CUDA 13.0, which needs an NVIDIA driver for CUDA 13" in line
    assert "this machine's driver is for CUDA 12.6" in line and "cuda-python==12.*" in line
