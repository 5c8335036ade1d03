"""Real-rclpy helpers for the integration tests: a node subprocess and a harness node.

Nothing here fakes ROS: the node under test is started as ``python -m
binseg_ros.ros.node`` exactly as ``ros2 run`` would, and the harness talks to it over
Fast DDS on loopback (shared memory + UDP on 127.0.0.1, see config/fastdds_localhost.xml).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from binseg_ros.ros.conversions import to_image

REPO = Path(__file__).resolve().parents[1]
ENCODING = {"rgb": "rgb8", "depth": "16UC1", "thermal": "mono16"}


def ros_environment() -> dict[str, str]:
    """A unique domain per test run, discovery on this host only, shared-memory transport."""
    return {
        "ROS_DOMAIN_ID": str(100 + os.getpid() % 100),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "FASTRTPS_DEFAULT_PROFILES_FILE": str(REPO / "config" / "fastdds_localhost.xml"),
        "RCUTILS_LOGGING_BUFFERED_STREAM": "0",
    }


def raw_frames(frame: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Dataset frame (sensor units) → the arrays a camera driver would publish."""
    return {
        "rgb": frame["rgb"],
        "depth": np.round(frame["depth"] * 1000).astype(np.uint16),
        "thermal": frame["thermal"].astype(np.uint16),
    }


class NodeProcess:
    """``segment_node`` in its own process; stop() sends SIGINT like Ctrl-C would."""

    def __init__(self, engine_dir: Path, **params: object) -> None:
        args = [sys.executable, "-m", "binseg_ros.ros.node", "--ros-args", "-p", f"engine_dir:={engine_dir}"]
        for name, value in params.items():
            args += ["-p", f"{name}:={str(value).lower() if isinstance(value, bool) else value}"]
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **ros_environment()}
        )
        self.output = ""

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.output, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode

    def wait(self, timeout: float = 20.0) -> int:
        self.output, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode


@dataclass
class ReceivedMask:
    stamp: tuple[int, int]
    frame_id: str
    shape: tuple[int, int]
    encoding: str
    values: set[int]
    received: float = field(default_factory=time.monotonic)


class Harness(Node):
    """Publishes camera topics and records the node's masks and diagnostics."""

    def __init__(self, node_name: str = "segment_node") -> None:
        super().__init__("binseg_test_harness")
        self.pubs = {m: self.create_publisher(Image, f"{m}/image", qos_profile_sensor_data) for m in ENCODING}
        self.masks: list[ReceivedMask] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.create_subscription(Image, f"/{node_name}/mask", self._on_mask, 50)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 50)
        self.sent: dict[str, int] = {m: 0 for m in ENCODING}

    def _on_mask(self, msg: Image) -> None:
        data = np.frombuffer(msg.data, np.uint8)
        self.masks.append(
            ReceivedMask((msg.header.stamp.sec, msg.header.stamp.nanosec), msg.header.frame_id,
                         (msg.height, msg.width), msg.encoding, set(np.unique(data).tolist()))
        )

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.005)

    def wait_for_node(self, timeout: float = 30.0) -> None:
        """Until the node subscribes to all three topics and publishes its mask."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(p.get_subscription_count() > 0 for p in self.pubs.values()) and self.count_publishers(
                "/segment_node/mask"
            ):
                self.spin_for(0.5)  # let the reverse discovery settle too
                return
            self.spin_for(0.1)
        raise TimeoutError("segment_node did not come up")

    def publish(self, modality: str, array: np.ndarray, stamp: Time, frame_id: str, encoding: str | None = None) -> None:
        self.pubs[modality].publish(to_image(array, encoding or ENCODING[modality], Header(stamp=stamp, frame_id=frame_id)))
        self.sent[modality] += 1

    def publish_raw(self, modality: str, msg: Image) -> None:
        self.pubs[modality].publish(msg)

    def play(
        self, frames: dict[str, np.ndarray], count: int, rate: float, modalities=("rgb", "depth", "thermal"),
        jitter: float = 0.0, seed: int = 0, tag: str = "f",
    ) -> list[Time]:
        """Publish ``count`` sets at ``rate`` Hz; non-RGB stamps jittered by ±``jitter`` s."""
        rng = np.random.default_rng(seed)
        stamps = []
        next_time = time.monotonic()
        for index in range(count):
            now_ns = self.get_clock().now().nanoseconds
            for modality in modalities:
                offset = 0 if modality == "rgb" else int(rng.uniform(-jitter, jitter) * 1e9)
                ns = now_ns + offset
                stamp = Time(sec=ns // 10**9, nanosec=ns % 10**9)
                if modality == "rgb":
                    stamps.append(stamp)
                self.publish(modality, frames[modality], stamp, f"{tag}_{modality}_{index}")
            next_time += 1.0 / rate
            self.spin_for(max(0.0, next_time - time.monotonic()))
        return stamps

    def mark(self) -> int:
        """A position in the diagnostics history, for :meth:`wait_for_status`."""
        return len(self.diagnostics)

    def statuses(self, suffix: str, since: int = 0) -> list[dict[str, object]]:
        """Key/values (+ 'level', 'message') of every status named ``*: suffix`` since ``since``."""
        found = []
        for array in self.diagnostics[since:]:
            for status in array.status:
                if status.name.endswith(f": {suffix}"):
                    values = {kv.key: kv.value for kv in status.values}
                    found.append({**values, "level": int.from_bytes(status.level, "little"), "message": status.message})
        return found

    def latest_status(self, suffix: str) -> dict[str, object] | None:
        found = self.statuses(suffix)
        return found[-1] if found else None

    def wait_for_status(self, suffix: str, predicate, since: int = 0, timeout: float = 5.0) -> dict[str, object]:
        """The first status since ``since`` satisfying ``predicate``, waiting up to ``timeout``."""
        end = time.monotonic() + timeout
        while True:
            for status in self.statuses(suffix, since):
                if predicate(status):
                    return status
            if time.monotonic() > end:
                raise AssertionError(
                    f"diagnostics '{suffix}' never satisfied the condition; last: {self.latest_status(suffix)}"
                )
            self.spin_for(0.1)
