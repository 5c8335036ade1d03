"""``binseg bench node``: segment_node's overhead per frame and end-to-end latency at 640x480,
against a naive baseline node measured in the same run on the same model.

1. Overhead, in process, on real 640x480 messages: conversion, synchronisation,
   preprocessing, postprocessing and publishing, i.e. everything but ``backend.run``.
2. End to end, over Fast DDS: the demo player publishes the sample at ``rate`` Hz to
   ``segment_node`` and then to the naive node (:mod:`binseg_ros.ros.naive_node`: plain
   subscriptions, inference in the callback, no sync); latency = mask received - RGB published.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable

import numpy as np

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.bags.rig_render import render_into_rig
from binseg_ros.bench.timing import median_ms
from binseg_ros.calibration.model import Rig
from binseg_ros.core.frame import Arrival, Frame, FrameSet
from binseg_ros.core.messages import to_frame
from binseg_ros.core.postprocess import to_mask, upscale
from binseg_ros.core.preprocess import prepare_images, prepare_inputs
from binseg_ros.core.registration import Registration
from binseg_ros.core.sync import SyncConfig, Synchronizer
from binseg_ros.datasets import CAMERA_ENCODING, SAMPLE, camera_frames, list_ids, load_frame
from binseg_ros.engines.manifest import Manifest
from binseg_ros.modalities import MODALITIES, Subset


def _percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p95, or NaN for fewer than two values (quantiles needs two)."""
    if len(values) < 2:
        return float("nan"), float("nan")
    return statistics.median(values), statistics.quantiles(values, n=20)[18]


def published(index: str, rig: Rig | None) -> dict[str, np.ndarray]:
    """The sample frame ``index`` as camera drivers publish it: as is (registered 640x480), or rendered into ``rig``."""
    frame = load_frame(SAMPLE, index)
    return camera_frames(frame if rig is None else render_into_rig(frame, rig))


def overhead(manifest: Manifest, runs: int, rig: Rig | None = None) -> dict[str, float]:
    """Median ms per frame of each non-inference stage, on real messages (in ``rig``'s cameras if given)."""
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from binseg_ros.ros.conversions import to_image

    frame = published(list_ids(SAMPLE)[0], rig)
    header = Header(frame_id="camera")
    messages = {m: to_image(frame[m], CAMERA_ENCODING[m], header) for m in frame}
    converted = {m: to_frame(m, messages[m], Arrival(0))[0] for m in messages}
    rclpy.init()
    node = Node("binseg_bench_overhead")
    publisher = node.create_publisher(Image, "bench_mask", 5)
    sets: list[FrameSet] = []
    clock = iter(range(10**9))

    registration = Registration(rig, output_size=manifest.input_size) if rig is not None else None

    def synchronise() -> None:
        """One full set through a fresh synchroniser, at a new time so no frame is a duplicate."""
        sync = Synchronizer(SyncConfig(), sets.append, registration.resolutions if registration else None)
        t = next(clock) * 100_000_000
        for m, frame in converted.items():
            sync.push(Frame(m, t, Arrival(t), frame.data, scale=frame.scale, offset=frame.offset))

    synchronise()
    registered = registration(sets[-1]).frames if registration else converted
    probability = OnnxRuntimeBackend(manifest).run(prepare_inputs(Subset(MODALITIES), registered, manifest.input_size))
    size = rig.reference_info.resolution if rig is not None else (480, 640)
    mask = to_mask(upscale(probability, size), 0.5)
    stages: dict[str, Callable[[], object]] = {
        "conversion (3 msgs)": lambda: [to_frame(m, messages[m], Arrival(0)) for m in messages],
        "sync (3 frames)": synchronise,
    }
    if registration is not None:
        stages["register (rig)"] = lambda: registration(sets[0])
    stages |= {
        "preprocess (resize 3)": lambda: prepare_inputs(Subset(MODALITIES), registered, manifest.input_size),
        "postprocess (upscale+threshold)": lambda: to_mask(upscale(probability, size), 0.5),
        "publish mask (to_image+publish)": lambda: publisher.publish(to_image(mask, "mono8", header)),
    }
    try:
        return {name: median_ms(fn, runs, warmup=5) for name, fn in stages.items()}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def end_to_end(
    command: list[str], env: dict[str, str], count: int, rate: float, rig: Rig | None = None
) -> tuple[list[float], int, dict[str, object] | None]:
    """Latencies (ms), sets sent, and the node's last own diagnostics (if it publishes any).

    ``command`` starts the node under test; the same player and sample measure either node.
    """
    import rclpy

    from binseg_ros.ros.player import FramePlayer

    frames = [published(i, rig) for i in list_ids(SAMPLE)]
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    rclpy.init()
    player = FramePlayer()
    try:
        player.wait_for_target()
        sent = player.play(frames, count, rate, tag="bench")
        player.spin_for(1.0)
        latencies = [(m.received - sent[m.stamp]) * 1e3 for m in player.masks if m.stamp in sent]
        own = player.statuses("segmentation")
        return latencies, len(sent), own[-1] if own else None
    finally:
        player.destroy_node()
        rclpy.try_shutdown()
        process.send_signal(signal.SIGINT)  # like Ctrl-C: the node shuts down cleanly
        process.wait(10)


def _cameras(rig: Rig | None) -> str:
    if rig is None:
        return "640x480 camera frames"
    sizes = ", ".join(f"{m} {w}x{h}" for m in MODALITIES for h, w in [rig.resolution(m)])
    return f"frames rendered into {rig.source} ({sizes})"


def run_node_bench(manifest: Manifest, runs: int, count: int, rate: float, rig: Rig | None = None) -> int:
    """``binseg bench node``: prints the overhead table and the end-to-end comparison; returns 0.

    With ``rig``, the cameras publish the sample rendered into the rig's cameras, the overhead
    includes registration, and segment_node runs with the rig file as ``calibration_file`` (the
    naive node resizes the unregistered images, as it would).

    A node that does not come up raises :class:`binseg_ros.errors.NodeError` (from the player's wait).
    """
    from binseg_ros.ros.process import use_local_ros_environment

    engine_dir = manifest.root
    env = use_local_ros_environment()  # before rclpy.init(): the players must find both nodes on this host
    print(
        f"model {manifest.model} ({manifest.version}) at {manifest.input_size[0]}x{manifest.input_size[1]}, "
        f"ONNX Runtime CPU; {_cameras(rig)}; median of {runs} runs"
    )
    stages = overhead(manifest, runs, rig)
    backend = OnnxRuntimeBackend(manifest)
    inputs = prepare_images(
        {m: np.zeros((480, 640, 3) if m == "rgb" else (480, 640), np.float32) for m in MODALITIES}, manifest.input_size
    )
    inference = median_ms(lambda: backend.run(inputs), runs, warmup=3)
    print("| stage | ms / frame |\n|---|---:|")
    for name, ms in stages.items():
        print(f"| {name} | {ms:.2f} |")
    print(f"| **node overhead (all but inference)** | **{sum(stages.values()):.2f}** |")
    print(f"| inference (rgb+depth+thermal, for scale) | {inference:.2f} |")

    ours = [sys.executable, "-m", "binseg_ros.ros.segment_node", "--ros-args", "-p", f"engine_dir:={engine_dir}"]
    if rig is not None:
        ours += ["-p", f"calibration_file:={rig.source}"]
    naive = [sys.executable, "-m", "binseg_ros.ros.naive_node", str(engine_dir)]
    commands = (("segment_node", ours), ("naive", naive))
    results = {name: end_to_end(cmd, env, count, rate, rig) for name, cmd in commands}
    print(f"\nend to end at {rate:g} Hz, {count} sets (mask received - RGB published, player side):")
    print("| node | masks / sets | p50 ms | p95 ms |\n|---|---:|---:|---:|")
    for name, (latencies, sent, _) in results.items():
        p50, p95 = _percentiles(latencies)
        print(f"| {name} | {len(latencies)} / {sent} | {p50:.1f} | {p95:.1f} |")
    own = results["segment_node"][2]
    if own:
        print(
            f"segment_node's own diagnostics (last input arrival -> mask publish): "
            f"p50 {own['latency_p50_ms']} ms, p95 {own['latency_p95_ms']} ms"
        )
    ours_p50, naive_p50 = _percentiles(results["segment_node"][0])[0], _percentiles(results["naive"][0])[0]
    print(f"\nratio segment_node / naive (p50 latency): {ours_p50 / naive_p50:.2f}")
    return 0
