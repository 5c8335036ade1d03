"""Real-rclpy helpers for the integration tests: a node subprocess and a harness node.

Nothing here fakes ROS: the node under test is started as ``python -m
binseg_ros.ros.segment_node`` exactly as ``ros2 run`` would, and the harness talks to it over
Fast DDS on loopback (shared memory + UDP on 127.0.0.1, see config/fastdds_localhost.xml).

"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sensor_msgs.msg import Image

from binseg_ros.errors import NodeError
from binseg_ros.ros.player import FramePlayer
from binseg_ros.ros.process import NodeProcess, local_ros_environment


def ros_environment() -> dict[str, str]:
    """A unique domain per test run, discovery on this host only, shared-memory transport."""
    return local_ros_environment(domain_id=100 + os.getpid() % 100)


def start_node(engine_root: Path, harness: Harness, **params: object) -> NodeProcess:
    """A ``segment_node`` process with ``params``, once ``harness`` sees it; a failed start fails the test."""
    process = NodeProcess(engine_root, ros_environment(), **params)
    try:
        harness.wait_for_target()
    except NodeError:
        process.stop()
        pytest.fail(f"segment_node did not start:\n{process.output}")
    return process


@contextmanager
def running_node(engine_root: Path, harness: Harness, **params: object) -> Iterator[NodeProcess]:
    """:func:`start_node` for a ``with`` block, then a stop that must be clean (exit 0, no traceback)."""
    process = start_node(engine_root, harness, **params)
    yield process
    rc = process.stop()
    assert rc == 0 and "Traceback" not in process.output, process.output


class Harness(FramePlayer):
    """The demo's player plus what the tests need: raw messages and diagnostics waits."""

    def publish_raw(self, modality: str, msg: Image) -> None:
        """Publish ``msg`` as is: malformed-input tests need messages ``to_image`` would never build."""
        self.pubs[modality].publish(msg)

    def mark(self) -> int:
        """A position in the diagnostics history, for :meth:`wait_for_status`."""
        return len(self.diagnostics)

    def latest_status(self, suffix: str) -> dict[str, object] | None:
        """The newest status named ``*: suffix``, or None before the node sent one."""
        found = self.statuses(suffix)
        return found[-1] if found else None

    def wait_for_status(
        self, suffix: str, predicate: Callable[[dict[str, object]], bool], since: int = 0, timeout: float = 5.0
    ) -> dict[str, object]:
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
