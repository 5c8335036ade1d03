"""The TensorRT plan cache's rules, without TensorRT: reuse only an intact plan built for the
same GPU, compute capability, TensorRT version, precision and ONNX; otherwise say why and rebuild."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from binseg_ros.engines.manifest import FileRef
from binseg_ros.engines.tensorrt.plan_cache import PlanCache, PlanKey, model_digest, slot_name
from binseg_ros.errors import BackendError

KEY = PlanKey("NVIDIA H100 80GB HBM3", "9.0", "10.3.0", "fp16", "a" * 64)
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
        {"tensorrt_version": "10.7.0"},
        {"precision": "fp32"},
        {"onnx_sha256": "b" * 64},
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


def test_timing_cache_is_shared_per_gpu_and_tensorrt_version_only(tmp_path):
    cache = PlanCache(tmp_path)
    same_platform = dataclasses.replace(KEY, precision="fp32", onnx_sha256="c" * 64)
    assert cache.timing_cache_path(KEY) == cache.timing_cache_path(same_platform)
    for change in ({"gpu_name": "Orin"}, {"compute_capability": "8.7"}, {"tensorrt_version": "10.7.0"}):
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
