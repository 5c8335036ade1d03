"""The node's publishers (:class:`Outputs`) and subscriptions, with QoS that the standard
``qos_overrides`` parameters can change.

Every topic the node reads or writes is created with rclpy's default overridable policies
(history, depth, reliability), so an integrator matches a driver or a recorder with the same
``qos_overrides.<topic>.<publisher|subscription>.<policy>`` parameters every ROS 2 node takes,
for one topic at a time, by its resolved name (``/rgb/image``, ``/segment_node/mask``). The
profile the node passes is only the default those parameters start from: for the inputs,
``qos.reliability`` and ``qos.depth``; an override given for a topic wins over them. rclpy writes
a topic's overrides into the profile it is given, so each topic gets a copy of the one passed:
one profile can serve several topics without one topic's override reaching the next.

rclpy declares each override parameter when the topic is first created (the publishers and the
camera_info subscriptions at configure, the image subscriptions at activate) and reads it again
when a managed node re-creates the topic, so a value holds for the node's life. A value rclpy or
the middleware would refuse stops the transition with a :class:`~binseg_ros.errors.ConfigError`
naming the parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import copy
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import InvalidQosOverridesError, QoSOverridingOptions
from rclpy.subscription import Subscription
from sensor_msgs.msg import Image

from binseg_ros.errors import ConfigError

OUTPUT_DEPTH = 5
DIAGNOSTICS_DEPTH = 10


def _check_depth(qos: QoSProfile) -> SetParametersResult:
    """rclpy checks an override's type and enum names, not the depth: a negative one reaches the
    middleware, which answers "invalid allocator"."""
    if qos.history != HistoryPolicy.KEEP_ALL and qos.depth < 1:
        return SetParametersResult(successful=False, reason=f"depth must be at least 1 with keep_last, got {qos.depth}")
    return SetParametersResult(successful=True)


OVERRIDABLE = QoSOverridingOptions.with_default_policies(callback=_check_depth)


def output_qos(depth: int = OUTPUT_DEPTH) -> QoSProfile:
    """Reliable, keep-last: reaches best-effort subscribers too."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def subscribe(node: Node, msg_type: Any, topic: str, callback: Callable[[Any], None], qos: QoSProfile) -> Subscription:
    """A subscription whose ``qos`` the topic's ``qos_overrides.<topic>.subscription.*`` parameters can change.

    Raises:
        ConfigError: an override parameter with a value the policy does not have.
    """
    with _overrides_checked(node, topic, "subscription"):
        return node.create_subscription(msg_type, topic, callback, copy(qos), qos_overriding_options=OVERRIDABLE)


def advertise(node: LifecycleNode, msg_type: Any, topic: str, qos: QoSProfile) -> LifecyclePublisher:
    """A lifecycle publisher (silent until the node is activated) with overridable QoS.

    Raises:
        ConfigError: an override parameter with a value the policy does not have.
    """
    with _overrides_checked(node, topic, "publisher"):
        publisher: LifecyclePublisher = node.create_lifecycle_publisher(
            msg_type, topic, copy(qos), qos_overriding_options=OVERRIDABLE
        )
    return publisher


@dataclass(frozen=True)
class Outputs:
    """The node's publishers, created by configure and enabled only while the node is active."""

    mask: LifecyclePublisher
    probability: LifecyclePublisher
    overlay: LifecyclePublisher
    diagnostics: LifecyclePublisher

    @classmethod
    def advertise(cls, node: LifecycleNode) -> Outputs:
        return cls(
            mask=advertise(node, Image, "~/mask", output_qos()),
            probability=advertise(node, Image, "~/probability", output_qos()),
            overlay=advertise(node, Image, "~/overlay", output_qos()),
            diagnostics=advertise(node, DiagnosticArray, "/diagnostics", output_qos(DIAGNOSTICS_DEPTH)),
        )

    def publishers(self) -> tuple[LifecyclePublisher, ...]:
        return self.mask, self.probability, self.overlay, self.diagnostics


@contextmanager
def _overrides_checked(node: Node, topic: str, kind: str) -> Iterator[None]:
    """Turns rclpy's refusal of an override value into a ConfigError naming the parameters."""
    try:
        yield
    except _rclpy.RCLError:  # the middleware's, not about the overrides
        raise
    except (ParameterException, InvalidQosOverridesError, RuntimeError) as exc:  # type, depth, unknown policy value
        raise ConfigError(f"parameter 'qos_overrides.{node.resolve_topic_name(topic)}.{kind}.*': {exc}") from exc
