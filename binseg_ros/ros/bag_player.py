"""A bag played onto real ROS 2 topics, the node's answers recorded (``binseg replay``'s ROS half).

The player publishes the bag's image messages as they were recorded (serialised CDR, no
re-encoding; ``sensor_msgs/Image`` or ``CompressedImage``, whichever each topic holds) at the
bag's timing divided by ``rate``, with ``/clock`` carrying bag time so the node runs under
``use_sim_time`` exactly as it did on the robot. It records the node's
``~/mask``, ``~/probability`` and ``/diagnostics`` into an output bag, stamped with bag
time, and the wall-clock latency from publishing a set's anchor image to receiving its mask.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image
from tqdm import tqdm

from binseg_ros.bags.io import (
    COMPRESSED_IMAGE,
    DIAGNOSTICS,
    IMAGE,
    TYPESTORE,
    BagWriter,
    bag_span,
    bag_topics,
    read_messages,
)
from binseg_ros.core.messages import ImageMessage, image_view, stamp_ns
from binseg_ros.errors import BagError
from binseg_ros.ros.discovery import wait_for_node

DRAIN_S = 3.0  # wall seconds to wait for the last masks after the bag ends
DRAIN_TICK_NS = 10_000_000  # bag time the clock advances per drain step, so the node's timeouts fire
MESSAGE_CLASSES = {IMAGE: Image, COMPRESSED_IMAGE: CompressedImage}  # image types the player publishes


@dataclass
class LiveMask:
    """What the node sent for one anchor stamp; mask and probability arrive on separate topics."""

    mask: np.ndarray | None = None  # mono8 0/255 as published
    probability: np.ndarray | None = None
    latency_s: float | None = None  # anchor published → mask received, wall clock


@dataclass
class ReplayResult:
    """One live replay: what was played, how long it took, and what the node answered."""

    out_bag: Path
    bag_duration_s: float
    wall_s: float
    played: dict[str, int]
    masks: dict[int, LiveMask] = field(default_factory=dict)  # anchor stamp ns → what the node sent
    last_diagnostics: DiagnosticArray | None = None


class BagPlayer(Node):
    """Publishes a bag's images and /clock; records the node's outputs into ``writer``.

    Subscriptions are raw (CDR bytes): the recorded bag gets exactly what the node sent,
    and only the header and pixels are decoded for the comparison.
    """

    def __init__(
        self, topics: Mapping[str, str], node_name: str, writer: BagWriter, types: Mapping[str, str] | None = None
    ) -> None:
        """``types``: topic → message type in the bag (``sensor_msgs/msg/Image`` where not given)."""
        super().__init__("binseg_bag_player")
        self.writer = writer
        self.clock_pub = self.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        self.image_pubs = {
            topic: self.create_publisher(
                _image_class(topic, (types or {}).get(topic, IMAGE)), topic, qos_profile_sensor_data
            )
            for topic in topics.values()
        }
        self.bag_time = 0  # ns: the clock this player publishes
        self.published: dict[int, float] = {}  # image stamp ns → wall time published
        self.result_masks: dict[int, LiveMask] = {}
        self.last_diagnostics: DiagnosticArray | None = None
        self.mask_topic, self.probability_topic = f"/{node_name}/mask", f"/{node_name}/probability"
        self.create_subscription(Image, self.mask_topic, self._on_mask, 100, raw=True)
        self.create_subscription(Image, self.probability_topic, self._on_probability, 100, raw=True)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50, raw=True)

    def tick(self, bag_time: int) -> None:
        """Publish ``bag_time`` (ns) on /clock: the node's sim time, and the time outputs are recorded at."""
        self.bag_time = bag_time
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(bag_time, 1_000_000_000)
        self.clock_pub.publish(msg)

    def play(self, topic: str, raw: bytes, stamp: int) -> None:
        """Publish one recorded image as is; its first publish time is the latency's start."""
        self.image_pubs[topic].publish(raw)
        self.published.setdefault(stamp, time.monotonic())

    def _decode(self, raw: bytes) -> tuple[int, np.ndarray]:
        msg = cast(ImageMessage, TYPESTORE.deserialize_cdr(raw, IMAGE))
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


def _image_class(topic: str, msgtype: str) -> type:
    """The rclpy class a topic of ``msgtype`` is published with; BagError for a non-image type."""
    if msgtype not in MESSAGE_CLASSES:
        raise BagError(f"{topic} holds {msgtype}; replay plays {' and '.join(MESSAGE_CLASSES)} topics")
    return MESSAGE_CLASSES[msgtype]


def replay_bag(
    bag: str | Path,
    out_bag: str | Path,
    topics: Mapping[str, str],
    node_name: str = "segment_node",
    rate: float = 1.0,
    discovery_timeout: float = 20.0,
    progress: bool = True,
) -> ReplayResult:
    """Play ``bag`` to a running ``node_name`` (rclpy must be initialised by the caller).

    Raises :class:`NodeError` when the node does not show up on the graph within
    ``discovery_timeout`` seconds: images published before it subscribes would be lost.
    """
    if rate <= 0:
        raise BagError(f"--rate must be > 0, got {rate}")
    by_topic = {topic: modality for modality, topic in topics.items()}
    start, end, count = bag_span(bag, by_topic)
    types = bag_topics(bag)
    with BagWriter(out_bag) as writer:
        player = BagPlayer(topics, node_name, writer, types)
        try:
            wait_for_node(player, player.image_pubs.values(), node_name, discovery_timeout)
            played, wall = _play(player, bag, by_topic, start, rate, count, progress)
            _drain(player)
            return ReplayResult(
                Path(out_bag), (end - start) * 1e-9, wall, played, player.result_masks, player.last_diagnostics
            )
        finally:
            player.destroy_node()


def _play(
    player: BagPlayer, bag: str | Path, by_topic: Mapping[str, str], start: int, rate: float, count: int, progress: bool
) -> tuple[dict[str, int], float]:
    """Publish every image at its recorded receive time (scaled by ``rate``).

    Returns images played per modality and the wall seconds playing took.
    """
    played: Counter[str] = Counter()
    player.tick(start)
    began = time.monotonic()
    for message in tqdm(read_messages(bag, by_topic), total=count, desc="replay", unit="msg", disable=not progress):
        due = began + (message.log_time - start) * 1e-9 / rate
        while (wait := due - time.monotonic()) > 0:
            rclpy.spin_once(player, timeout_sec=min(wait, 0.01))
        player.tick(message.log_time)
        if message.msg is None:
            continue  # undecodable: the offline evaluation counts it; the node would never see it
        player.play(message.topic, bytes(message.raw), stamp_ns(message.msg.header))
        played[by_topic[message.topic]] += 1
    return dict(played), time.monotonic() - began


def _drain(player: BagPlayer) -> None:
    """Collect the last masks after the bag ends; the clock keeps running, so timeouts fire."""
    drain_until = time.monotonic() + DRAIN_S
    while time.monotonic() < drain_until:
        player.tick(player.bag_time + DRAIN_TICK_NS)
        rclpy.spin_once(player, timeout_sec=0.01)
