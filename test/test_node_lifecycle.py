"""segment_node as a managed node, driven as a lifecycle manager drives it: through the real
``lifecycle_msgs`` services, from a second node, over DDS.

Masks flow only while the node is active; deactivate keeps the engines (activate again needs no
configure), cleanup frees them (configure again loads them), and the shutdown transition ends the
process with exit code 0 from whichever state it is taken.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.node import Node, NodeNameNonExistentError
from rosgraph import ros_environment

from binseg_ros.datasets import SAMPLE, camera_frames, list_ids, load_frame
from binseg_ros.engines.locate import DEFAULT_MODEL
from binseg_ros.ros.process import NodeProcess

SHIPPED = Path(__file__).resolve().parents[1] / "engines" / DEFAULT_MODEL
TARGET = "segment_node"
MIN_MASKS = 5  # of 15 sets: 240x320 inference on a busy CPU drops some (latest wins)
SHUTDOWN_FROM = {
    "unconfigured": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
    "inactive": Transition.TRANSITION_INACTIVE_SHUTDOWN,
    "active": Transition.TRANSITION_ACTIVE_SHUTDOWN,
}


class Manager:
    """What a lifecycle manager does: ``change_state`` and ``get_state`` calls to the node's services."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.change = node.create_client(ChangeState, f"/{TARGET}/change_state")
        self.get = node.create_client(GetState, f"/{TARGET}/get_state")

    def wait_for_services(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.change.service_is_ready() and self.get.service_is_ready()):
            assert time.monotonic() < deadline, f"no lifecycle services on {TARGET} after {timeout} s"
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def state(self) -> str:
        return self._call(self.get, GetState.Request()).current_state.label

    def transition(self, transition: int) -> bool:
        return self._call(self.change, ChangeState.Request(transition=Transition(id=transition))).success

    def _call(self, client, request, timeout: float = 30.0):
        future = client.call_async(request)
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
        assert future.done(), f"{client.srv_name} did not answer within {timeout} s"
        return future.result()

    def close(self) -> None:
        self.node.destroy_client(self.change)
        self.node.destroy_client(self.get)


@pytest.fixture(scope="module")
def frames() -> dict:
    return camera_frames(load_frame(SAMPLE, list_ids(SAMPLE)[0]))


@pytest.fixture
def manager(ros_harness):
    manager = Manager(ros_harness)
    yield manager
    manager.close()


def masks_while_playing(harness, frames, tag: str) -> int:
    """Masks that answer a 1 s, 15 Hz stream (and the 0.5 s after it)."""
    harness.masks.clear()
    harness.play([frames], count=15, rate=15.0, tag=tag)
    harness.spin_for(0.5)
    return len([m for m in harness.masks if m.frame_id.startswith(tag)])


def stop_if_running(node: NodeProcess) -> None:
    """A failed test's node: stopped, its output kept for the report."""
    if node.process.returncode is None:
        node.stop()


def wait_until_unsubscribed(harness, timeout: float = 10.0) -> None:
    """Until no one subscribes to the camera topics: the node's deactivate removed its subscriptions."""
    deadline = time.monotonic() + timeout
    while any(pub.get_subscription_count() for pub in harness.pubs.values()):
        assert time.monotonic() < deadline, "the node still subscribes to the cameras"
        harness.spin_for(0.05)


def test_masks_flow_only_while_active(ros_harness, manager, frames):
    harness = ros_harness
    node = NodeProcess(SHIPPED, ros_environment(), lifecycle=True, autostart=False)
    try:
        manager.wait_for_services()
        assert manager.state() == "unconfigured"
        assert masks_while_playing(harness, frames, "unconfigured") == 0

        assert manager.transition(Transition.TRANSITION_CONFIGURE)
        assert manager.state() == "inactive"
        assert masks_while_playing(harness, frames, "inactive") == 0

        assert manager.transition(Transition.TRANSITION_ACTIVATE)
        assert manager.state() == "active"
        harness.wait_for_target()
        assert masks_while_playing(harness, frames, "active") >= MIN_MASKS

        assert manager.transition(Transition.TRANSITION_DEACTIVATE)
        assert manager.state() == "inactive"
        wait_until_unsubscribed(harness)
        assert masks_while_playing(harness, frames, "deactivated") == 0

        assert manager.transition(Transition.TRANSITION_ACTIVATE)  # engines kept: no configure
        harness.wait_for_target()
        assert masks_while_playing(harness, frames, "reactivated") >= MIN_MASKS

        assert manager.transition(Transition.TRANSITION_DEACTIVATE)
        assert manager.transition(Transition.TRANSITION_CLEANUP)
        assert manager.state() == "unconfigured"
        assert _publisher_gone(harness)
        assert manager.transition(Transition.TRANSITION_CONFIGURE)
        assert manager.transition(Transition.TRANSITION_ACTIVATE)
        harness.wait_for_target()
        assert masks_while_playing(harness, frames, "reconfigured") >= MIN_MASKS

        assert manager.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        rc = node.wait(timeout=10.0)  # finalized: the process ends by itself
    finally:
        stop_if_running(node)
    assert rc == 0, node.output
    assert "Traceback" not in node.output and "[ERROR]" not in node.output, node.output
    assert node.output.count("warming up") == 2, node.output  # configure twice, activate twice without it


def _publisher_gone(harness, timeout: float = 5.0) -> bool:
    """cleanup destroyed the mask publisher: the graph shows it within ``timeout``."""
    deadline = time.monotonic() + timeout
    while harness.count_publishers(f"/{TARGET}/mask") > 0:
        if time.monotonic() > deadline:
            return False
        harness.spin_for(0.05)
    return True


@pytest.mark.parametrize("state", ["unconfigured", "inactive"])
def test_shutdown_from_any_state_exits_0(manager, state):
    node = NodeProcess(SHIPPED, ros_environment(), lifecycle=True, autostart=False)
    try:
        manager.wait_for_services()
        if state == "inactive":
            assert manager.transition(Transition.TRANSITION_CONFIGURE)
        assert manager.state() == state
        assert manager.transition(SHUTDOWN_FROM[state])
        rc = node.wait(timeout=10.0)
    finally:
        stop_if_running(node)
    assert rc == 0 and "Traceback" not in node.output, node.output


def test_autostart_configures_and_activates_a_managed_node(ros_harness, manager, frames):
    node = NodeProcess(SHIPPED, ros_environment(), lifecycle=True)
    try:
        manager.wait_for_services()
        ros_harness.wait_for_target()
        assert manager.state() == "active"
        assert masks_while_playing(ros_harness, frames, "autostart") >= MIN_MASKS
    finally:
        assert node.stop() == 0, node.output


def _services(harness, node_name: str) -> set[str]:
    """The services discovery reports for ``node_name``; none while the node is not yet known."""
    try:
        return {name for name, _ in harness.get_service_names_and_types_by_node(node_name, "/")}
    except NodeNameNonExistentError:
        return set()


def test_a_plain_node_offers_no_lifecycle_services(ros_harness):
    # A name of its own: the graph may still hold an earlier test's segment_node until its lease ends.
    plain = "plain_segment_node"
    node = NodeProcess(SHIPPED, ros_environment(), remaps={"__node": plain})
    try:
        deadline = time.monotonic() + 30.0  # start-up, then discovery reports its services one by one
        while f"/{plain}/get_parameters" not in (services := _services(ros_harness, plain)):
            assert time.monotonic() < deadline, services
            time.sleep(0.05)
        time.sleep(0.5)  # the rest of its services, had it any more
        services = _services(ros_harness, plain)
        assert not {name for name in services if name.endswith(("/change_state", "/get_state"))}, services
    finally:
        assert node.stop() == 0, node.output


def test_a_failed_configure_leaves_the_node_unconfigured_and_says_why(manager, tmp_path):
    node = NodeProcess(tmp_path / "nowhere", ros_environment(), lifecycle=True, autostart=False)
    try:
        manager.wait_for_services()
        assert not manager.transition(Transition.TRANSITION_CONFIGURE)
        assert manager.state() == "unconfigured"
        assert manager.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        rc = node.wait(timeout=10.0)
    finally:
        stop_if_running(node)
    assert rc == 0, node.output
    errors = [line for line in node.output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "configure failed: no manifest.yaml in" in errors[0], node.output
    assert "Traceback" not in node.output, node.output
