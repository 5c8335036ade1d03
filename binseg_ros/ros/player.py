"""Plays registered frames as camera topics and records what the node answers.

Used by ``binseg demo`` (and the integration tests): a real rclpy node that publishes
``rgb/image`` (rgb8), ``depth/image`` (16UC1 mm) and ``thermal/image`` (mono16 counts) with
the sensor-data QoS cameras use, and subscribes to ``~/mask`` and ``/diagnostics``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from binseg_ros.datasets import CAMERA_ENCODING
from binseg_ros.modalities import MODALITIES, image_topic
from binseg_ros.ros.conversions import to_image
from binseg_ros.ros.discovery import spin_for, wait_for_node

SETTLE_S = 0.5  # after discovery, so the node's mask publisher matches our subscription before we play


@dataclass
class ReceivedMask:
    """One ``~/mask`` as received, with the monotonic receive time for latencies."""

    stamp: tuple[int, int]
    frame_id: str
    shape: tuple[int, int]
    encoding: str
    data: np.ndarray
    received: float = field(default_factory=time.monotonic)


class FramePlayer(Node):
    """Publisher of the three camera topics and recorder of the node's outputs."""

    def __init__(self, target: str = "segment_node", name: str = "binseg_player") -> None:
        super().__init__(name)
        self.target = target
        self.pubs: dict[str, Publisher] = {
            m: self.create_publisher(Image, image_topic(m), qos_profile_sensor_data) for m in MODALITIES
        }
        self.masks: list[ReceivedMask] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.create_subscription(Image, f"/{target}/mask", self._on_mask, 50)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)

    def _on_mask(self, msg: Image) -> None:
        data = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width).copy()
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        self.masks.append(ReceivedMask(stamp, msg.header.frame_id, (msg.height, msg.width), msg.encoding, data))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics.append(msg)

    def spin_for(self, seconds: float) -> None:
        """Serve callbacks (masks, diagnostics) for ``seconds`` of wall time."""
        spin_for(self, seconds)

    def wait_for_target(self, timeout: float = 30.0) -> None:
        """Until the node subscribes to every camera topic and publishes its mask; else :class:`NodeError`."""
        wait_for_node(self, self.pubs.values(), self.target, timeout, settle_s=SETTLE_S)

    def publish(self, modality: str, array: np.ndarray, stamp: Time, frame_id: str) -> None:
        """One camera image, encoded as that camera would send it."""
        header = Header(stamp=stamp, frame_id=frame_id)
        self.pubs[modality].publish(to_image(array, CAMERA_ENCODING[modality], header))

    def play(
        self,
        frames: list[dict[str, np.ndarray]],
        count: int,
        rate: float,
        modalities: tuple[str, ...] = MODALITIES,
        jitter: float = 0.0,
        tag: str = "f",
        seed: int = 0,
    ) -> dict[tuple[int, int], float]:
        """Publish ``count`` sets cycling through ``frames`` at ``rate`` Hz.

        RGB carries the set's clock stamp; other modalities are jittered by up to ±``jitter``
        seconds. Frame ids are ``{tag}_{modality}_{index}``. Returns RGB stamp → monotonic
        publish time, for latency measurements.
        """
        rng = np.random.default_rng(seed)
        sent: dict[tuple[int, int], float] = {}
        next_time = time.monotonic()
        for index in range(count):
            frame = frames[index % len(frames)]
            now_ns = self.get_clock().now().nanoseconds
            for modality in modalities:
                ns = now_ns if modality == "rgb" else now_ns + int(rng.uniform(-jitter, jitter) * 1e9)
                stamp = Time(sec=ns // 10**9, nanosec=ns % 10**9)
                self.publish(modality, frame[modality], stamp, f"{tag}_{modality}_{index}")
                if modality == "rgb":
                    sent[(stamp.sec, stamp.nanosec)] = time.monotonic()
            next_time += 1.0 / rate
            self.spin_for(max(0.0, next_time - time.monotonic()))
        return sent

    def statuses(self, suffix: str, since: int = 0) -> list[dict[str, object]]:
        """Key/values (+ ``level``, ``message``) of each status named ``*: suffix`` from index ``since``."""
        return [
            status_values(status)
            for array in self.diagnostics[since:]
            for status in array.status
            if status.name.endswith(f": {suffix}")
        ]


def status_values(status: DiagnosticStatus) -> dict[str, object]:
    """A status's key/values, with its ``level`` (an int) and ``message``."""
    values: dict[str, object] = {kv.key: kv.value for kv in status.values}
    values.update(level=int.from_bytes(status.level, "little"), message=status.message)
    return values
