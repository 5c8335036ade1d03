"""``binseg replay``: the offline evaluation of a bag, the same bag played live to segment_node, compared.

Three steps, each in its own module: the offline evaluation (:mod:`binseg_ros.bags.evaluate`,
report under ``offline/``), the live replay over ROS 2 (:mod:`binseg_ros.ros.bag_player`,
recorded bag under ``recorded/``), and the summary (:mod:`binseg_ros.bags.replay_report`,
``replay.md`` and ``replay.json``). This module runs them in order and matches the live masks
to the offline ones by exact anchor stamp: the node and the offline pipeline share the
runtime, so on the same bag and backend they must give the same masks frame for frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import rclpy

from binseg_ros.bags.io import COMPRESSED_IMAGE, bag_topics
from binseg_ros.bags.replay_report import ReplayComparison, ReplaySummary, write_replay_report
from binseg_ros.core.compressed import split_transport_topic
from binseg_ros.core.sync import SyncConfig
from binseg_ros.errors import BagError, NodeError
from binseg_ros.metrics import FrameScore, score_frame
from binseg_ros.modalities import image_topic
from binseg_ros.ros.bag_player import LiveMask, ReplayResult, replay_bag
from binseg_ros.ros.process import NodeProcess, use_local_ros_environment

if TYPE_CHECKING:
    from binseg_ros.bags.evaluate import BagEvaluation
    from binseg_ros.bags.groundtruth import GroundTruth
    from binseg_ros.engines.manifest import Manifest

LATENCY_PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class ReplayOptions:
    """What ``binseg replay`` was asked to do (the CLI's flags, parsed)."""

    bag: Path
    out: Path
    engine_dir: Path | None
    backend: str
    form: str
    topics: dict[str, str]  # modality → image topic in the bag
    sync: SyncConfig
    rate: float = 1.0
    node_running: bool = False  # talk to a segment_node the user started, instead of starting one
    node_name: str = "segment_node"
    calibration: Path | None = None  # rig file: the offline run and the node register with it
    quality_gate: bool = True  # False: both runs use every image, degraded or not


def run_replay(options: ReplayOptions, truth: GroundTruth) -> Path:
    """``binseg replay``: offline evaluation, live replay through segment_node, comparison; returns replay.md."""
    from binseg_ros.bags.evaluate import BagEvaluator
    from binseg_ros.bags.report import write_report
    from binseg_ros.calibration.files import load_rig
    from binseg_ros.core.quality import QualityConfig
    from binseg_ros.engines.locate import open_engine_folder

    manifest = open_engine_folder(options.engine_dir)
    out_bag = options.out / "recorded"
    if out_bag.exists():
        raise BagError(f"{out_bag} exists; choose a new --out")
    rig = load_rig(options.calibration) if options.calibration is not None else None
    quality = QualityConfig() if options.quality_gate else None
    evaluator = BagEvaluator.for_engines(
        manifest, options.backend, options.form, options.sync, options.topics, rig=rig, quality=quality
    )
    offline = evaluator.run(options.bag, truth)
    write_report(offline, options.out / "offline", f"Offline evaluation: {options.bag.name}")
    # Our own node: it and the player stay on this host. A node the user runs: their environment reaches it.
    env = None if options.node_running else use_local_ros_environment()
    node = None if env is None else _start_node(options, manifest, env)
    result = _replay_live(options, out_bag, node)
    comparison = compare(result, offline, truth)
    return write_replay_report(_summary(options, result, comparison, offline), options.out)


def _start_node(options: ReplayOptions, manifest: Manifest, env: dict[str, str]) -> NodeProcess:
    """segment_node on sim time, subscribed to the bag's topics, with the offline run's settings."""
    remaps, transports = _node_inputs(options.topics, bag_topics(options.bag))
    calibration = {"calibration_file": options.calibration.resolve()} if options.calibration is not None else {}
    return NodeProcess(
        manifest.root,
        env,
        remaps=remaps,
        **transports,
        **calibration,
        use_sim_time=True,
        backend=options.backend,
        frequency_form=options.form,
        slop=options.sync.slop,
        modality_timeout=options.sync.modality_timeout,
        max_delay=options.sync.max_delay,
        readmit_frames=options.sync.readmit_frames,
        **{"quality.enabled": str(options.quality_gate).lower()},  # a parameter name with a dot
    )


def _node_inputs(topics: dict[str, str], types: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(remaps, ``<modality>.transport`` parameters) that make the node subscribe to the bag's topics.

    A ``CompressedImage`` topic must be named as image_transport names it (``<base>/compressed``
    or ``<base>/compressedDepth``): the node subscribes to ``<base>`` remapped, plus the suffix.
    """
    remaps, transports = {}, {}
    for modality, topic in topics.items():
        base, transport = split_transport_topic(topic) if types.get(topic) == COMPRESSED_IMAGE else (topic, "raw")
        if types.get(topic) == COMPRESSED_IMAGE and transport == "raw":
            raise BagError(f"{topic} holds CompressedImage but is not named <topic>/compressed or /compressedDepth")
        remaps[image_topic(modality)] = base
        if transport != "raw":
            transports[f"{modality}.transport"] = transport
    return remaps, transports


def _replay_live(options: ReplayOptions, out_bag: Path, node: NodeProcess | None) -> ReplayResult:
    """Play the bag to the node and stop the node (if ours); a node that failed raises :class:`NodeError`.

    The node is stopped exactly once, whatever happened, because its output is only
    complete once it exits; that output goes into the error so the user sees why.
    """
    failure: NodeError | None = None
    result: ReplayResult | None = None
    rclpy.init()
    try:
        result = replay_bag(options.bag, out_bag, options.topics, options.node_name, options.rate)
    except NodeError as exc:
        failure = exc
    finally:
        rclpy.try_shutdown()
        code = node.stop() if node is not None else 0
    if failure is not None and node is not None:
        raise NodeError(f"{failure}; node output:\n{node.output}") from failure
    if failure is not None:
        raise failure
    if node is not None and code != 0:
        raise NodeError(f"segment_node exited with code {code}:\n{node.output}")
    assert result is not None  # replay_bag returned: no failure
    return result


def compare(result: ReplayResult, evaluation: BagEvaluation, truth: GroundTruth) -> ReplayComparison:
    """Match live masks to offline records and to ground truth, by exact anchor stamp."""
    offline = {record.stamp: record for record in evaluation.records}
    masks = {stamp: live for stamp, live in result.masks.items() if live.mask is not None}
    common = [stamp for stamp in masks if stamp in offline]
    identical = sum(np.array_equal(cast(np.ndarray, masks[s].mask), offline[s].mask) for s in common)
    latencies = np.array([m.latency_s for m in masks.values() if m.latency_s is not None]) * 1e3
    latency = {f"p{q}": float(np.percentile(latencies, q)) for q in LATENCY_PERCENTILES} if len(latencies) else {}
    return ReplayComparison(
        len(masks),
        len(offline),
        len(common),
        int(identical),
        len(masks) - len(common),
        len(offline) - len(common),
        _node_drops(result),
        _score(masks, truth),
        latency,
    )


def _score(masks: dict[int, LiveMask], truth: GroundTruth) -> list[FrameScore]:
    """Scores of the live masks that have ground truth, in stamp order.

    The live probability when the node published it, else the 0/255 mask scaled to [0, 1].
    """
    scores = []
    for stamp, live in sorted(masks.items()):
        label = truth.lookup(stamp)
        if label is None or live.mask is None:
            continue
        probability = live.probability if live.probability is not None else live.mask.astype(np.float32) / 255
        if probability.shape == label.shape:
            scores.append(score_frame(probability, label))
    return scores


def _node_drops(result: ReplayResult) -> dict[str, int]:
    """The ``drops.*`` counters of the last /diagnostics the node sent (cumulative, so the last has all)."""
    drops: dict[str, int] = {}
    for status in result.last_diagnostics.status if result.last_diagnostics is not None else []:
        drops.update({kv.key[len("drops.") :]: int(kv.value) for kv in status.values if kv.key.startswith("drops.")})
    return drops


def _summary(
    options: ReplayOptions, result: ReplayResult, comparison: ReplayComparison, offline: BagEvaluation
) -> ReplaySummary:
    """The numbers ``replay.json`` and ``replay.md`` state."""
    return ReplaySummary(
        bag=str(options.bag),
        recorded=str(result.out_bag),
        rate=options.rate,
        bag_duration_s=result.bag_duration_s,
        wall_s=result.wall_s,
        played=result.played,
        comparison=comparison,
        offline_metrics=offline.overall(),
    )
