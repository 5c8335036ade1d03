"""``binseg replay``: a bag played onto real ROS 2 topics, the node's answers recorded.

The player publishes the bag's image messages as they were recorded (serialised CDR, no
re-encoding) at the bag's timing divided by ``rate``, with ``/clock`` carrying bag time so
the node runs under ``use_sim_time`` exactly as it did on the robot. It records the node's
``~/mask``, ``~/probability`` and ``/diagnostics`` into an output bag, stamped with bag
time, and the wall-clock latency from publishing a set's anchor image to receiving its mask.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from tqdm import tqdm

from binseg_ros.bags.io import DIAGNOSTICS, IMAGE, TYPESTORE, BagWriter, bag_span, read_messages, stamp_ns
from binseg_ros.errors import BagError
from binseg_ros.images import image_view
from binseg_ros.modalities import image_topic
from binseg_ros.sync import SyncConfig

DRAIN_S = 3.0  # wall seconds to wait for the last masks after the bag ends


@dataclass
class LiveMask:
    mask: np.ndarray | None = None  # mono8 0/255 as published
    probability: np.ndarray | None = None
    latency_s: float | None = None  # anchor published → mask received, wall clock


@dataclass
class ReplayResult:
    out_bag: Path
    bag_duration_s: float
    wall_s: float
    played: dict[str, int]
    masks: dict[int, LiveMask] = field(default_factory=dict)  # anchor stamp ns → what the node sent
    last_diagnostics: DiagnosticArray | None = None


class BagPlayer(Node):
    """Publishes a bag's images and /clock; records the node's outputs into ``writer``."""

    def __init__(self, topics: Mapping[str, str], node_name: str, writer: BagWriter) -> None:
        super().__init__("binseg_bag_player")
        self.writer = writer
        self.clock_pub = self.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        self.image_pubs = {topic: self.create_publisher(Image, topic, qos_profile_sensor_data) for topic in topics.values()}
        self.bag_time = 0  # ns: the clock this player publishes
        self.published: dict[int, float] = {}  # image stamp ns → wall time published
        self.result_masks: dict[int, LiveMask] = {}
        self.last_diagnostics: DiagnosticArray | None = None
        self.create_subscription(Image, f"/{node_name}/mask", self._on_mask, 100, raw=True)
        self.create_subscription(Image, f"/{node_name}/probability", self._on_probability, 100, raw=True)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50, raw=True)
        self.mask_topic, self.probability_topic = f"/{node_name}/mask", f"/{node_name}/probability"

    def tick(self, bag_time: int) -> None:
        self.bag_time = bag_time
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(bag_time, 1_000_000_000)
        self.clock_pub.publish(msg)

    def play(self, topic: str, raw: bytes, stamp: int) -> None:
        self.image_pubs[topic].publish(raw)
        self.published.setdefault(stamp, time.monotonic())

    def _decode(self, raw: bytes) -> tuple[int, np.ndarray]:
        msg = TYPESTORE.deserialize_cdr(raw, IMAGE)
        return stamp_ns(msg.header), image_view(msg).copy()  # copy: the view would pin the CDR buffer

    def _on_mask(self, raw: bytes) -> None:
        received = time.monotonic()
        self.writer.write_raw(self.mask_topic, IMAGE, self.bag_time, raw)
        stamp, mask = self._decode(raw)
        live = self.result_masks.setdefault(stamp, LiveMask())
        live.mask = mask
        if stamp in self.published:
            live.latency_s = received - self.published[stamp]

    def _on_probability(self, raw: bytes) -> None:
        self.writer.write_raw(self.probability_topic, IMAGE, self.bag_time, raw)
        stamp, probability = self._decode(raw)
        self.result_masks.setdefault(stamp, LiveMask()).probability = probability

    def _on_diagnostics(self, raw: bytes) -> None:
        self.writer.write_raw("/diagnostics", DIAGNOSTICS, self.bag_time, raw)
        self.last_diagnostics = TYPESTORE.deserialize_cdr(raw, DIAGNOSTICS)


def replay_bag(bag: str | Path, out_bag: str | Path, topics: Mapping[str, str], node_name: str = "segment_node",
               rate: float = 1.0, discovery_timeout: float = 20.0, progress: bool = True) -> ReplayResult:
    """Play ``bag`` to a running ``node_name`` (rclpy must be initialised by the caller)."""
    if rate <= 0:
        raise BagError(f"--rate must be > 0, got {rate}")
    by_topic = {topic: modality for modality, topic in topics.items()}
    start, end, count = bag_span(bag, by_topic)
    played: Counter[str] = Counter()
    with BagWriter(out_bag) as writer:
        player = BagPlayer(topics, node_name, writer)
        try:
            _wait_for_subscribers(player, discovery_timeout)
            player.tick(start)
            began = time.monotonic()
            for message in tqdm(read_messages(bag, by_topic), total=count, desc="replay", unit="msg",
                                disable=not progress):
                due = began + (message.log_time - start) * 1e-9 / rate
                while (wait := due - time.monotonic()) > 0:
                    rclpy.spin_once(player, timeout_sec=min(wait, 0.01))
                player.tick(message.log_time)
                if message.msg is None:
                    continue  # undecodable: the offline evaluation counts it; the node would never see it
                player.play(message.topic, bytes(message.raw), stamp_ns(message.msg.header))
                played[by_topic[message.topic]] += 1
            wall = time.monotonic() - began
            drain_until = time.monotonic() + DRAIN_S
            while time.monotonic() < drain_until:
                player.tick(player.bag_time + 10_000_000)  # the clock keeps running, so timeouts fire
                rclpy.spin_once(player, timeout_sec=0.01)
            return ReplayResult(Path(out_bag), (end - start) * 1e-9, wall, dict(played), player.result_masks,
                                player.last_diagnostics)
        finally:
            player.destroy_node()


def _wait_for_subscribers(player: BagPlayer, timeout: float) -> None:
    """The node must subscribe to every image topic before the first message, or it is lost."""
    deadline = time.monotonic() + timeout
    while any(pub.get_subscription_count() == 0 for pub in player.image_pubs.values()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no subscriber on {', '.join(player.image_pubs)} after {timeout:.0f} s")
        rclpy.spin_once(player, timeout_sec=0.1)
    while player.count_publishers(player.mask_topic) == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no publisher of {player.mask_topic} after {timeout:.0f} s")
        rclpy.spin_once(player, timeout_sec=0.1)


@dataclass(frozen=True)
class ReplayComparison:
    """The live run against the offline evaluation of the same bag and backend."""

    live_masks: int
    offline_masks: int
    common: int  # stamps both produced
    identical: int  # of those, pixel-identical masks
    live_only: int
    offline_only: int  # sets the live run dropped (e.g. superseded under load)
    node_drops: dict[str, int]  # the live node's drop counters, from its last /diagnostics
    scores: list  # FrameScore of live masks with ground truth  # type: ignore[type-arg]
    latency_ms: dict[str, float]


def compare(result: ReplayResult, evaluation, truth) -> ReplayComparison:  # type: ignore[no-untyped-def]
    """Match live masks to offline records and to ground truth, by exact anchor stamp."""
    from binseg_ros.metrics import score_frame

    offline = {record.stamp: record for record in evaluation.records}
    masks = {stamp: live for stamp, live in result.masks.items() if live.mask is not None}
    common = [stamp for stamp in masks if stamp in offline]
    identical = sum(np.array_equal(masks[s].mask, offline[s].mask) for s in common)
    scores = []
    for stamp, live in sorted(masks.items()):
        label = truth.lookup(stamp)
        if label is None:
            continue
        probability = live.probability if live.probability is not None else live.mask.astype(np.float32) / 255  # type: ignore[union-attr]
        if probability.shape == label.shape:
            scores.append(score_frame(probability, label))
    node_drops = {}
    for status in result.last_diagnostics.status if result.last_diagnostics is not None else []:
        node_drops.update({kv.key[len("drops."):]: int(kv.value) for kv in status.values if kv.key.startswith("drops.")})
    latencies = np.array([m.latency_s for m in masks.values() if m.latency_s is not None]) * 1e3
    latency = {f"p{q}": float(np.percentile(latencies, q)) for q in (50, 95, 99)} if len(latencies) else {}
    return ReplayComparison(len(masks), len(offline), len(common), int(identical),
                            len(masks) - len(common), len(offline) - len(common), node_drops, scores, latency)


@dataclass(frozen=True)
class ReplayOptions:
    bag: Path
    out: Path
    engine_dir: Path | None
    backend: str
    form: str
    topics: dict[str, str]
    sync: SyncConfig
    rate: float = 1.0
    node_running: bool = False
    node_name: str = "segment_node"


def run_replay(options: ReplayOptions, truth) -> Path:  # type: ignore[no-untyped-def]
    """``binseg replay``: offline evaluation, live replay through segment_node, comparison; returns replay.md."""
    import json
    import os

    from binseg_ros.bags.evaluate import BagEvaluator
    from binseg_ros.bags.report import write_report
    from binseg_ros.engines.locate import locate_engine_dir
    from binseg_ros.metrics import summarize
    from binseg_ros.ros.process import NodeProcess, local_ros_environment

    folder = locate_engine_dir(options.engine_dir)
    out_bag = options.out / "recorded"
    if out_bag.exists():
        raise BagError(f"{out_bag} exists; choose a new --out")
    evaluator = BagEvaluator.for_engines(folder, options.backend, options.form, options.sync, options.topics)
    offline = evaluator.run(options.bag, truth)
    write_report(offline, options.out / "offline", f"Offline evaluation: {options.bag.name}")
    node = None
    if not options.node_running:
        env = local_ros_environment()
        os.environ.update(env)
        node = NodeProcess(folder, env, remaps={image_topic(m): t for m, t in options.topics.items()}, use_sim_time=True,
                           backend=options.backend, frequency_form=options.form, slop=options.sync.slop,
                           modality_timeout=options.sync.modality_timeout)
    rclpy.init()
    try:
        result = replay_bag(options.bag, out_bag, options.topics, options.node_name, options.rate)
    finally:
        rclpy.try_shutdown()
        code = node.stop() if node is not None else 0
    if node is not None and code != 0:
        raise BagError(f"segment_node exited with code {code}:\n{node.output}")
    comparison = compare(result, offline, truth)
    summary = {
        "bag": str(options.bag), "recorded": str(out_bag), "rate": options.rate,
        "bag_duration_s": result.bag_duration_s, "wall_s": result.wall_s,
        "wall_over_duration": result.wall_s / result.bag_duration_s, "played": result.played,
        **{f.name: getattr(comparison, f.name) for f in fields(comparison) if f.name != "scores"},
        "live_metrics": summarize(comparison.scores) if comparison.scores else {},
        "offline_metrics": offline.overall(),
    }
    (options.out / "replay.json").write_text(json.dumps(summary, indent=2))
    lines = [
        f"# Replay: {options.bag.name}", "",
        f"- Played {sum(result.played.values())} images ({result.played}) at rate {options.rate:g} in "
        f"{result.wall_s:.1f} s wall for {result.bag_duration_s:.1f} s of bag.",
        f"- Masks: live {comparison.live_masks}, offline {comparison.offline_masks}; same stamp {comparison.common}, "
        f"pixel-identical {comparison.identical}; offline only (dropped live) {comparison.offline_only}; "
        f"live only {comparison.live_only}; the node's drop counters: {comparison.node_drops or 'none'}.",
        "- Anchor published → mask received (wall, ms): "
        + (", ".join(f"{k} {v:.1f}" for k, v in comparison.latency_ms.items()) or "none"),
        "", "| run | IoU | S | maxF | MAE |", "|---|---:|---:|---:|---:|",
    ]
    for label, metrics in (("live", summary["live_metrics"]), ("offline", summary["offline_metrics"])):
        if metrics:
            lines.append(f"| {label} | {metrics['IoU']:.3f} | {metrics['S']:.3f} | {metrics['maxF']:.3f} | "
                         f"{metrics['MAE']:.4f} |")
    lines += ["", "Offline report with plots: [offline/report.md](offline/report.md).", ""]
    path = options.out / "replay.md"
    path.write_text("\n".join(lines))
    return path
