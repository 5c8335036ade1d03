"""``segment_node`` as a plain or a managed (lifecycle) node: the two parameters that choose, and
how a transition's work is run.

- ``lifecycle: false`` (the default): a plain node. It still goes through the lifecycle states
  internally (configure, then activate, at start), but offers no lifecycle services, so the
  ROS graph shows what it always showed.
- ``lifecycle: true``: the node offers ``~/change_state``, ``~/get_state`` and the rest of the
  ``lifecycle_msgs`` interface. configure loads and warms the engines, activate subscribes and
  publishes, deactivate stops both and keeps the engines, cleanup frees them, shutdown ends the
  node from any state. With ``autostart: true`` (the default) it configures and activates itself
  at start, so a launch file that turns the interface on without a lifecycle manager still gets
  masks; ``autostart: false`` leaves it unconfigured for a manager.

rclpy turns an exception in a transition callback into an ERROR transition and drops it; here a
:class:`~binseg_ros.errors.BinsegError` fails the transition (the state stays where it was) with
its message logged or, while the node starts itself, raised to the caller, which stops the process
with one log line.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass

from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node

from binseg_ros.errors import BinsegError
from binseg_ros.ros.params import NodeSettings
from binseg_ros.ros.stop import StopRequested, stop_requested


@dataclass(frozen=True)
class LifecycleOptions:
    managed: bool  # the ``lifecycle`` parameter
    autostart: bool

    @property
    def waits_for_manager(self) -> bool:
        return self.managed and not self.autostart

    @classmethod
    def of(cls, settings: NodeSettings) -> LifecycleOptions:
        """The ``lifecycle`` and ``autostart`` parameters (ros/params.py)."""
        return cls(managed=settings.lifecycle, autostart=settings.autostart)


class TransitionRunner:
    """Runs one transition's work and keeps what made it fail."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.failure: BaseException | None = None
        self.quiet = False  # the caller raises ``failure`` itself: log nothing

    def run(self, transition: str, work: Callable[[], None], undo: Callable[[], None]) -> TransitionCallbackReturn:
        """SUCCESS; FAILURE on a BinsegError; ERROR on anything else (a bug, logged with its traceback,
        which rclpy would otherwise drop). ``undo`` frees what a failed ``work`` had built, so the node
        is as it was before the transition and a retry starts clean."""
        try:
            work()
        except Exception as exc:  # rclpy would catch it and drop it; this keeps it
            if stop_requested():  # the stop signal, in the words of whatever it interrupted
                raise StopRequested(transition) from exc
            self.failure = exc
            undo()
            expected = isinstance(exc, BinsegError)
            if not self.quiet:
                detail = str(exc) if expected else "".join(traceback.format_exception(exc)).rstrip()
                self._node.get_logger().error(f"{transition} failed: {detail}")
            return TransitionCallbackReturn.FAILURE if expected else TransitionCallbackReturn.ERROR
        return TransitionCallbackReturn.SUCCESS
