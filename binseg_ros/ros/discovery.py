"""Waiting for ``segment_node`` on the ROS graph before the first message goes out.

Image topics use the sensor-data QoS (best effort, shallow queue): a message published
before the node's subscription is matched is simply lost. So every player (the demo's,
the benches', the tests' harness and the bag replay) waits here until the node subscribes
to every image topic it will publish and publishes its mask, and only then plays.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import rclpy
from rclpy.node import Node
from rclpy.publisher import Publisher

from binseg_ros.errors import NodeError

POLL_S = 0.1  # wall seconds between graph checks


def spin_for(node: Node, seconds: float) -> None:
    """Serve ``node``'s callbacks for ``seconds`` of wall time (in short slices, so none waits long)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.005)


def wait_for_node(
    player: Node, publishers: Iterable[Publisher], target: str, timeout: float, settle_s: float = 0.0
) -> None:
    """Until ``target`` subscribes to every one of ``publishers`` and publishes ``/target/mask``.

    ``player`` is spun meanwhile, so it takes part in discovery. ``settle_s`` more seconds
    of spinning let discovery finish in the other direction too (the node's mask publisher
    matching the player's subscription), for players that count every mask from the first.
    Raises :class:`NodeError` naming what is still missing after ``timeout`` seconds.
    """
    publishers = list(publishers)
    mask_topic = f"/{target}/mask"
    deadline = time.monotonic() + timeout
    while True:
        missing = [pub.topic_name for pub in publishers if pub.get_subscription_count() == 0]
        if not missing and player.count_publishers(mask_topic) > 0:
            break
        if time.monotonic() > deadline:
            what = f"no subscriber on {', '.join(missing)}" if missing else f"no publisher of {mask_topic}"
            raise NodeError(f"{target} did not come up within {timeout:.0f} s: {what}")
        spin_for(player, POLL_S)
    spin_for(player, settle_s)
