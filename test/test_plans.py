"""The TensorRT plan cache's rules, without TensorRT: reuse only an intact plan built for the
same GPU, compute capability, TensorRT flavour and version, precision and ONNX (or ahead of time
for the same compute capability); otherwise say why and rebuild."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys

import pytest
from conftest import REPO
from test_tensorrt_targets import TRT_10

from binseg_ros.engines.locate import open_engine_folder
from binseg_ros.engines.manifest import FileRef
from binseg_ros.engines.tensorrt.loading import PlanResult, ensure_plan
from binseg_ros.engines.tensorrt.plan_cache import PlanCache, PlanKey, model_digest, slot_name
from binseg_ros.engines.tensorrt.targets import AHEAD_OF_TIME, FLAVOUR_ENV, FLAVOURS, BuildTarget, Flavour
from binseg_ros.errors import BackendError
from binseg_ros.modalities import parse_subset

KEY = PlanKey("NVIDIA H100 80GB HBM3", "9.0", "tensorrt", "10.3.0", "fp16", "a" * 64)
RTX = Flavour("tensorrt_rtx", "1.7.1.116")
SLOT = slot_name("rgb_depth.kernel", "fp16")
PLAN = bytes(range(256)) * 64


def test_a_stored_plan_is_reused_for_the_same_key(tmp_path):
    cache = PlanCache(tmp_path)
    path = cache.store(SLOT, KEY, PLAN)
    assert path.name == "rgb_depth.kernel.fp16.plan"
    assert cache.load(SLOT, KEY) == PLAN


@pytest.mark.parametrize(
    "change",
    [
        {"gpu_name": "Orin"},
        {"compute_capability": "8.7"},
        {"tensorrt_flavour": "tensorrt_rtx"},
        {"tensorrt_version": "10.7.0"},
        {"precision": "fp32"},
        {"onnx_sha256": "b" * 64},
        {"plugin_sha256": "d" * 64},
    ],
)
def test_any_key_change_rebuilds_and_logs_what_changed(tmp_path, caplog, change):
    cache = PlanCache(tmp_path)
    cache.store(SLOT, KEY, PLAN)
    other = dataclasses.replace(KEY, **change)
    with caplog.at_level(logging.WARNING):
        assert cache.load(SLOT, other) is None
    ((field, value),) = change.items()
    assert f"{field} {getattr(KEY, field)} -> {value}" in caplog.text


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage_record", "missing_record"])
def test_a_damaged_slot_is_detected_and_rebuilt_not_loaded(tmp_path, caplog, damage):
    cache = PlanCache(tmp_path)
    plan = cache.store(SLOT, KEY, PLAN)
    record = plan.with_suffix(".json")
    if damage == "truncate":
        plan.write_bytes(PLAN[:1000])
    elif damage == "flip":
        plan.write_bytes(PLAN[:100] + bytes([PLAN[100] ^ 1]) + PLAN[101:])
    elif damage == "garbage_record":
        record.write_text("{not json")
    else:
        record.unlink()
    with caplog.at_level(logging.INFO):
        assert cache.load(SLOT, KEY) is None
    assert SLOT in caplog.text
    cache.store(SLOT, KEY, PLAN)  # the rebuild overwrites the damaged slot
    assert cache.load(SLOT, KEY) == PLAN


def test_invalidate_drops_a_plan_tensorrt_refused(tmp_path, caplog):
    cache = PlanCache(tmp_path)
    cache.store(SLOT, KEY, PLAN)
    with caplog.at_level(logging.WARNING):
        cache.invalidate(SLOT, "deserialize_cuda_engine returned None")
    assert "deserialize_cuda_engine returned None" in caplog.text
    assert cache.load(SLOT, KEY) is None and not list(tmp_path.iterdir())


def test_the_key_records_flavour_version_and_target(tmp_path):
    local = PlanKey.for_target(BuildTarget(RTX, "NVIDIA GeForce RTX 4090", "8.9"), "fp32", "a" * 64)
    assert local == PlanKey("NVIDIA GeForce RTX 4090", "8.9", "tensorrt_rtx", "1.7.1.116", "fp32", "a" * 64)
    ahead = PlanKey.for_target(BuildTarget(RTX, AHEAD_OF_TIME, "8.9"), "fp32", "a" * 64)
    assert ahead == dataclasses.replace(local, gpu_name="ahead of time")
    cache = PlanCache(tmp_path)
    cache.store(SLOT, ahead, PLAN)
    assert f'"gpu_name": "{AHEAD_OF_TIME}"' in cache.plan_path(SLOT).with_suffix(".json").read_text()


def test_a_plan_built_ahead_of_time_serves_every_gpu_of_its_compute_capability(tmp_path, caplog):
    """TensorRT-RTX compiles the kernels for the actual GPU when it loads the plan."""
    ahead = PlanKey.for_target(BuildTarget(RTX, AHEAD_OF_TIME, "8.9"), "fp32", "a" * 64)
    cache = PlanCache(tmp_path)
    cache.store(SLOT, ahead, PLAN)
    for gpu in ("NVIDIA GeForce RTX 4090", "NVIDIA RTX 4000 SFF Ada Generation"):
        assert cache.load(SLOT, dataclasses.replace(ahead, gpu_name=gpu)) == PLAN
    assert cache.load(SLOT, ahead) == PLAN
    local = dataclasses.replace(ahead, gpu_name="NVIDIA GeForce RTX 4090")
    for change in ({"compute_capability": "8.6"}, {"tensorrt_version": "1.8.0.1"}, {"precision": "fp16"}):
        with caplog.at_level(logging.WARNING):
            assert cache.load(SLOT, dataclasses.replace(local, **change)) is None
    cache.store(SLOT, local, PLAN)  # not the other way round: a plan built on one GPU is that GPU's
    assert cache.load(SLOT, ahead) is None
    assert "gpu_name NVIDIA GeForce RTX 4090 -> ahead of time" in caplog.text


def test_a_kernel_plan_is_used_only_with_the_plugin_library_that_built_it(tmp_path, caplog, monkeypatch):
    """The plugin's workspace size is fixed in the plan when it is built and the plugin
    serialises no fields, so another library's kernels must not run a cached plan: that is a
    rebuild, logged like any other key change (here the rebuild stops at the missing TensorRT)."""
    shipped = open_engine_folder(REPO / "engines" / "binseg_s")
    subset, target = parse_subset("rgb"), BuildTarget(TRT_10, "Orin", "8.7")
    built_with, upgraded = "1" * 64, "2" * 64
    cache = PlanCache(tmp_path)
    key = PlanKey.for_target(target, "fp16", model_digest(shipped, subset, "kernel"), built_with)
    cache.store("rgb.kernel.fp16", key, PLAN)
    found = ensure_plan(shipped, subset, cache, target, "fp16", built_with, False)
    assert found == PlanResult("rgb.kernel.fp16", "kernel", PLAN, built=False)
    monkeypatch.delenv(FLAVOUR_ENV, raising=False)
    for name in FLAVOURS:
        monkeypatch.setitem(sys.modules, name, None)
    with caplog.at_level(logging.WARNING), pytest.raises(BackendError, match="needs the TensorRT Python package"):
        ensure_plan(shipped, subset, cache, target, "fp16", upgraded, False)
    assert f"plugin_sha256 {built_with} -> {upgraded}" in caplog.text
    assert "building TensorRT plan rgb.kernel.fp16" in caplog.text


def test_a_plan_without_plugin_nodes_keeps_its_key(tmp_path):
    """A record written before keys named a plugin library still serves a plugin-free plan."""
    assert PlanKey.for_target(BuildTarget(Flavour("tensorrt", "10.3.0"), KEY.gpu_name, "9.0"), "fp16", "a" * 64) == KEY
    cache = PlanCache(tmp_path)
    record = cache.store(SLOT, KEY, PLAN).with_suffix(".json")
    stored = json.loads(record.read_text())
    assert stored["key"].pop("plugin_sha256") is None
    record.write_text(json.dumps(stored))
    assert cache.load(SLOT, KEY) == PLAN


def test_timing_cache_is_shared_per_gpu_and_tensorrt_version_only(tmp_path):
    cache = PlanCache(tmp_path)
    same_platform = dataclasses.replace(KEY, precision="fp32", onnx_sha256="c" * 64)
    assert cache.timing_cache_path(KEY) == cache.timing_cache_path(same_platform)
    changes = (
        {"gpu_name": "Orin"},
        {"compute_capability": "8.7"},
        {"tensorrt_flavour": "tensorrt_rtx"},
        {"tensorrt_version": "10.7.0"},
    )
    for change in changes:
        assert cache.timing_cache_path(dataclasses.replace(KEY, **change)) != cache.timing_cache_path(KEY)


def test_model_digest_covers_the_external_weights(engine_folder):
    subset = ("rgb", "depth")
    digest = model_digest(engine_folder, subset, "kernel")
    assert digest != model_digest(engine_folder, subset, "matmul")
    retrained = dataclasses.replace(engine_folder, tensors=FileRef(engine_folder.tensors.file, "0" * 64))
    assert model_digest(retrained, subset, "kernel") != digest  # same graph file, new weights


def test_a_record_with_an_unknown_precision_is_refused(tmp_path, caplog):
    with pytest.raises(BackendError, match="precision must be one of fp16, fp32, int8"):
        PlanKey.from_record({**dataclasses.asdict(KEY), "precision": "bf16"})
    cache = PlanCache(tmp_path)
    record = cache.store(SLOT, KEY, PLAN).with_suffix(".json")
    record.write_text(record.read_text().replace('"fp16"', '"bf16"'))
    with caplog.at_level(logging.WARNING):
        assert cache.load(SLOT, KEY) is None
    assert "unreadable" in caplog.text and "precision must be one of" in caplog.text
