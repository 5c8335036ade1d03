"""The pipeline bench's measuring loop, run on the CPU: every set it plays comes back as a mask."""

from __future__ import annotations

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.bench.gpu_pipeline import pipeline_latencies_ms
from binseg_ros.engines.locate import open_engine_folder


def test_every_played_set_is_timed_once_from_its_first_message_to_its_mask():
    manifest = open_engine_folder()
    latencies = pipeline_latencies_ms(OnnxRuntimeBackend(manifest), manifest, sets=5, warmup=2)
    assert len(latencies) == 5
    assert all(latency > 0 for latency in latencies)
