"""segment_node stops cleanly on SIGINT and SIGTERM whenever they come: while it starts, while it
warms its engines up (at start, or when a lifecycle manager asked it to configure), and while it
segments a 30 Hz stream. Each stop is a real signal to a real
node process; it must exit 0, print no traceback, and publish nothing after its context is gone.

The node takes both signals from the first line of its entry point (before rclpy starts); a test
that means "immediately" waits for that moment by reading the process's caught-signal mask
(``SigCgt`` in ``/proc/<pid>/status``), as the Python interpreter's own start-up comes before it.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rosgraph import ros_environment

from binseg_ros.datasets import SAMPLE, camera_frames, list_ids, load_frame
from binseg_ros.engines.locate import DEFAULT_MODEL
from binseg_ros.ros.process import NodeProcess

SHIPPED = Path(__file__).resolve().parents[1] / "engines" / DEFAULT_MODEL  # 240x320: warm-up takes a while
SIGNALS = [signal.SIGINT, signal.SIGTERM]
WARMING = "warming up"
READY = "subscribed to"  # the line activate writes
EXIT_S = 10.0


class WatchedNode:
    """A node process whose output is read while it runs, so a test can act on a log line."""

    def __init__(self, **params: object) -> None:
        self.node = NodeProcess(SHIPPED, ros_environment(), **params)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self.node.process.stdout
        assert stdout is not None
        for line in stdout:
            self.lines.append(line)

    def wait_for_handlers(self, timeout: float = 20.0) -> None:
        """Until the process catches SIGTERM: its entry point has installed its handlers."""
        deadline = time.monotonic() + timeout
        while not self._catches(signal.SIGTERM):
            assert time.monotonic() < deadline, f"no SIGTERM handler after {timeout} s: {self.output}"
            assert self.node.process.poll() is None, f"exited early: {self.output}"
            time.sleep(0.002)

    def _catches(self, number: int) -> bool:
        status = Path(f"/proc/{self.node.process.pid}/status").read_text()
        caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
        return bool(int(caught.split()[1], 16) >> (number - 1) & 1)

    def wait_for_line(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline, f"no '{text}' after {timeout} s: {self.output}"
            assert self.node.process.poll() is None, f"exited early: {self.output}"
            time.sleep(0.002)

    def stop(self, number: int) -> int:
        """Send the signal; the exit code once the process has ended (killed after EXIT_S)."""
        self.node.process.send_signal(number)
        try:
            code = self.node.process.wait(EXIT_S)
        except subprocess.TimeoutExpired:
            self.node.process.kill()
            code = self.node.process.wait()
            self.lines.append(f"[killed: no exit within {EXIT_S} s of the signal]\n")
        self._reader.join(5.0)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def assert_clean_exit(code: int, output: str) -> None:
    assert code == 0, output
    assert "Traceback" not in output, output
    assert "context is invalid" not in output and "Failed to publish" not in output, output
    assert "[ERROR]" not in output and "[FATAL]" not in output, output


@pytest.fixture(scope="module")
def frames() -> dict:
    return camera_frames(load_frame(SAMPLE, list_ids(SAMPLE)[0]))


@pytest.mark.parametrize("number", SIGNALS, ids=lambda n: n.name)
@pytest.mark.parametrize("delay", [0.0, 0.3], ids=["at-once", "after-0.3s"])
def test_a_signal_during_startup_exits_0(number, delay):
    node = WatchedNode()
    node.wait_for_handlers()
    time.sleep(delay)
    assert_clean_exit(node.stop(number), node.output)


@pytest.mark.parametrize("number", SIGNALS, ids=lambda n: n.name)
def test_a_signal_during_warm_up_exits_0_without_finishing_it(number):
    node = WatchedNode()
    node.wait_for_line(WARMING)
    start = time.monotonic()
    code = node.stop(number)
    assert_clean_exit(code, node.output)
    assert READY not in node.output, "the signal came after warm-up: the test proves nothing"
    assert time.monotonic() - start < 3.0, "the warm-up ran to its end before the node stopped"


def test_sigterm_during_a_requested_configure_exits_0(ros_harness):
    """A managed node: the signal lands inside the configure service call, while the engines warm up."""
    node = WatchedNode(lifecycle=True, autostart=False)
    client = ros_harness.create_client(ChangeState, "/segment_node/change_state")
    try:
        assert client.wait_for_service(timeout_sec=30.0), node.output
        answer = client.call_async(ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
        node.wait_for_line(WARMING)
        code = node.stop(signal.SIGTERM)
        ros_harness.spin_for(0.2)
    finally:
        ros_harness.destroy_client(client)
    assert_clean_exit(code, node.output)
    assert not answer.done(), "configure ended before the signal: the test proves nothing"


@pytest.mark.parametrize("number", SIGNALS, ids=lambda n: n.name)
def test_a_signal_while_segmenting_30_hz_exits_0(ros_harness, frames, number):
    """Three stops per signal, each with sets in flight: the inference thread is stopped before
    the context goes away, so nothing it publishes meets an invalid context."""
    for attempt in range(3):
        node = WatchedNode()
        ros_harness.wait_for_target()
        ros_harness.masks.clear()
        ros_harness.play([frames], count=15 + 4 * attempt, rate=30.0, tag=f"{number.name}{attempt}")
        node.node.process.send_signal(number)  # while the last sets are still being segmented
        ros_harness.play([frames], count=6, rate=30.0, tag="after")
        assert ros_harness.masks, f"no masks before the signal: {node.output}"
        assert_clean_exit(node.stop(number), node.output)
        wait_until_gone(ros_harness)


def wait_until_gone(harness, timeout: float = 10.0) -> None:
    """Until the graph no longer shows the stopped node, so the next one is not mistaken for it."""
    deadline = time.monotonic() + timeout
    while harness.count_publishers(f"/{harness.target}/mask") > 0:
        assert time.monotonic() < deadline, "the stopped node is still on the graph"
        harness.spin_for(0.05)
