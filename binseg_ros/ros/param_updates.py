"""Live parameters: ``ros2 param set`` on the running node changes the threshold, the optional
outputs, the synchroniser's timing and the quality gate's limits.

The parameters marked ``live`` in :data:`~binseg_ros.ros.params.PARAMS` are declared writable.
rclpy refuses a read-only parameter, a wrong type and a value out of range (NaN and inf are
out of every range) before it asks :class:`LiveSettings`, which refuses what only the core can
tell (limits that contradict each other), hands the rest to the running
:class:`~binseg_ros.core.runtime.SegmentationRuntime`, and only then lets rclpy store the value.
So a refused value leaves the parameter, the node's settings and the core as they were, and the
``SetParametersResult`` says why. While there is no runtime (a lifecycle node not configured)
an accepted value waits in the settings, which configure reads.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from binseg_ros.core.runtime import SegmentationRuntime
from binseg_ros.errors import ConfigError
from binseg_ros.ros.params import PARAMS, NodeSettings

LIVE = {spec.name: spec for spec in PARAMS if spec.live}
Runtime = Callable[[], SegmentationRuntime | None]  # the node's runtime now, None while it has none


class LiveSettings:
    """The node's settings as the last accepted ``ros2 param set`` left them."""

    def __init__(self, node: Node, settings: NodeSettings, runtime: Runtime) -> None:
        self._node = node
        self._current = settings
        self._runtime = runtime
        self._lock = threading.Lock()  # one change at a time, from the start of its check to its end

    @property
    def current(self) -> NodeSettings:
        """The settings now; any thread may read them (the publisher reads them per mask)."""
        return self._current

    def update(self, parameters: list[Parameter]) -> SetParametersResult:
        """rclpy's on-set callback: apply ``parameters`` (already of their type and in range) to
        the core, or refuse them all with the reason. Parameters not in the table (rclpy's own,
        such as ``use_sim_time``) are rclpy's business."""
        with self._lock:
            changes = {LIVE[p.name].field: p.value for p in parameters if p.name in LIVE}
            if not changes:
                return SetParametersResult(successful=True)
            settings = dataclasses.replace(self._current, **changes)
            try:
                self._apply(settings)
            except ConfigError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            self._current = settings
        self._node.get_logger().info(", ".join(f"{p.name} = {p.value!r}" for p in parameters if p.name in LIVE))
        return SetParametersResult(successful=True)

    def _apply(self, settings: NodeSettings) -> None:
        """Check ``settings`` as the core will take them and, with a runtime, hand them over.

        Raises:
            ConfigError: what the core refuses.
        """
        sync, quality = settings.sync_config(), settings.quality_config()
        runtime = self._runtime()
        if runtime is not None:
            runtime.reconfigure(sync, settings.threshold, quality)


def watch_parameters(node: Node, settings: NodeSettings, runtime: Runtime) -> LiveSettings:
    """Apply live parameter changes to the runtime ``runtime()`` returns at the time, from now on;
    ``.current`` of the result is ``settings`` as changed since. Call after the node declared its
    parameters (:func:`~binseg_ros.ros.params.declare_settings`)."""
    live = LiveSettings(node, settings, runtime)
    node.add_on_set_parameters_callback(live.update)
    return live
