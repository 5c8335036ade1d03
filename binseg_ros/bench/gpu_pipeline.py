"""``binseg bench gpu-pipeline``: the node's pipeline end to end on the GPU backend, DDS aside.

The demo frames (``binseg_ros/sample``) go through :class:`~binseg_ros.core.runtime.SegmentationRuntime`
as the node hands them over: three image messages per set (``rgb8``, ``16UC1``, ``mono16`` at
640x480, as camera drivers publish them) → conversion → synchroniser → worker thread →
preprocessing, inference, upscaling and thresholding → the publish callback. One set is in
flight at a time; latency is the callback's time minus the ingest of the set's first message.

Two backends over the same engine folder, in the same run: ONNX Runtime on the CPU (the
node's default, the baseline) and torch on CUDA (the frequency kernels and one CUDA graph per
subset). What it leaves out is the Fast DDS hop on either side, which ``binseg bench node``
measures on a machine with ROS.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from binseg_ros.core.backend import Backend
from binseg_ros.core.frame import NS_PER_S, Arrival
from binseg_ros.core.messages import Header, Stamp, image_fields
from binseg_ros.core.runtime import SegmentationRuntime
from binseg_ros.core.segmenter import Segmentation, Segmenter
from binseg_ros.core.sync import SyncConfig
from binseg_ros.datasets import CAMERA_ENCODING, SAMPLE, camera_frames, list_ids, load_frame
from binseg_ros.engines.manifest import Manifest
from binseg_ros.errors import BackendError
from binseg_ros.modalities import MODALITIES, Subset

PERIOD_NS = NS_PER_S // 30  # stamps 30 Hz apart, so every set is new to the synchroniser


@dataclass
class _Stamp:
    sec: int
    nanosec: int


@dataclass
class _Header:
    stamp: Stamp
    frame_id: str


@dataclass
class _Image:
    """A ``sensor_msgs/Image`` as the runtime reads it (:class:`~binseg_ros.core.messages.ImageMessage`)."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: Any


def _messages(stamp_ns: int, frame: dict[str, np.ndarray]) -> dict[str, _Image]:
    header = _Header(_Stamp(*divmod(stamp_ns, NS_PER_S)), "camera")
    return {m: _Image(header, **image_fields(frame[m], CAMERA_ENCODING[m])) for m in MODALITIES}


def pipeline_latencies_ms(backend: Backend, manifest: Manifest, sets: int, warmup: int) -> list[float]:
    """Ingest of the first message → publish callback, per set, for ``sets`` sets after ``warmup``."""
    frames = [camera_frames(load_frame(SAMPLE, i)) for i in list_ids(SAMPLE)]
    done = threading.Event()
    published: list[Segmentation] = []

    def publish(result: Segmentation) -> None:
        published.append(result)
        done.set()

    segmenter = Segmenter(backend, manifest.input_size)
    segmenter.warm_up(Subset(MODALITIES))
    runtime = SegmentationRuntime(segmenter, SyncConfig(), publish, threaded=True)
    latencies = []
    try:
        for index in range(warmup + sets):
            messages = _messages((index + 1) * PERIOD_NS, frames[index % len(frames)])
            done.clear()
            start = time.perf_counter()
            for modality, msg in messages.items():
                if (error := runtime.ingest(modality, msg, Arrival(time.time_ns()))) is not None:
                    raise BackendError(f"the demo frame was refused: {error}")
            if not done.wait(10.0):
                raise BackendError(f"no mask within 10 s for set {index}: {runtime.status(time.time_ns()).drops}")
            if index >= warmup:
                latencies.append((time.perf_counter() - start) * 1e3)
    finally:
        runtime.close()
    return latencies


def run_gpu_pipeline_bench(manifest: Manifest, sets: int = 300, warmup: int = 30, device: str = "cuda") -> int:
    """Print the table described in the module docstring; returns the exit code."""
    import torch

    from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
    from binseg_ros.backends.torch import TorchBackend

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError("binseg bench gpu-pipeline needs a CUDA GPU (torch.cuda.is_available() is False)")
    paths: dict[str, Callable[[], Backend]] = {
        "onnxruntime cpu (baseline)": lambda: OnnxRuntimeBackend(manifest),
        f"torch {device}, kernels + graphs": lambda: TorchBackend.from_manifest(manifest, device),
    }
    height, width = manifest.input_size
    print(f"{manifest.model} at {height}x{width}; the sample's 640x480 frames as rgb8/16UC1/mono16 messages")
    print(f"{sets} sets after {warmup} warm-up sets, one in flight; first message ingested -> publish callback")
    print()
    print("| backend | p50 ms | p95 ms | p99 ms | masks/s (one in flight) | ×baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    baseline = None
    for name, make in paths.items():
        samples = pipeline_latencies_ms(make(), manifest, sets, warmup)
        p50 = statistics.median(samples)
        baseline = baseline or p50
        p95, p99 = (float(np.percentile(samples, q)) for q in (95, 99))
        print(f"| {name} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {1000 / p50:.0f} | {baseline / p50:.2f} |", flush=True)
    return 0
