"""How ``segment_node`` starts rclpy and stops on SIGINT or SIGTERM.

rclpy's own signal handlers shut the ROS context down inside the signal handler, before any
of the node's code runs: the inference thread, still publishing its last mask, then finds its
publisher's context invalid, and a SIGTERM during start-up breaks whatever rclpy call the
constructor was making. So the node starts rclpy without them and takes both signals itself:
the first one raises :class:`~binseg_ros.ros.stop.StopRequested` in the main thread, wherever it is (loading an
engine, warming up, spinning), and the caller stops the inference thread, destroys the node
and only then shuts the context down. Whatever error that raise becomes on its way out (a C
extension it interrupted may report it as its own) counts as the stop
(:func:`~binseg_ros.ros.stop.stop_requested`). The handlers themselves live in
:mod:`binseg_ros.ros.stop`, which imports nothing slow, so the entry point installs them before
the node's imports.

Without rclpy's handlers nothing wakes the executor's wait on a signal, so :func:`spin_until`
waits in slices of :data:`WAKE_S`: a stop takes effect within that time.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.logging import LoggingSeverity, get_logger_level, set_logger_level
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from binseg_ros.errors import ConfigError
from binseg_ros.ros.stop import stop_requested

WAKE_S = 0.1  # s: the longest a stop signal waits for the executor
_SOURCE_LOCATION = re.compile(r", at \S+:\d+")  # rcl's ", at /path/file.c:123" suffixes


def init_context(args: list[str] | None) -> Context:
    """A ROS context for ``args`` (``--ros-args ...``), without rclpy's signal handlers.

    rcl logs its own error line before refusing arguments; it is held back here, because the
    message it logs is the one the raised error carries.

    Raises:
        ConfigError: arguments rcl refuses, such as a missing or malformed ``--params-file``.
    """
    context = Context()
    before = get_logger_level("rcl")
    set_logger_level("rcl", LoggingSeverity.FATAL)
    try:
        rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)
    except _rclpy.RCLError as exc:
        message = _SOURCE_LOCATION.sub("", str(exc)).removeprefix("failed to initialize rcl: ")
        raise ConfigError(f"ROS arguments refused: {message}") from exc
    finally:
        if get_logger_level("rcl") == LoggingSeverity.FATAL:  # not set by a --log-level argument meanwhile
            set_logger_level("rcl", before)
    return context


def spin_until(node: Node, done: Callable[[], bool]) -> None:
    """Serve ``node``'s callbacks until ``done()`` or its context shuts down; a stop signal raises out of it."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while node.context.ok() and not done() and not stop_requested():
            executor.spin_once(timeout_sec=WAKE_S)
    finally:
        executor.shutdown(timeout_sec=0)  # lets go of the node and destroys the executor's guard conditions
