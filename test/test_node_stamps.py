"""segment_node over real rclpy and Fast DDS, with stamps and sizes a driver gets wrong: a bad
stamp costs only its own image, a bag that loops is segmented again within modality_timeout, and
an odd-sized RGB image is a resolution mismatch that costs no set."""

from __future__ import annotations

import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from conftest import frame_inputs
from rosgraph import running_node

from binseg_ros.datasets import camera_frames

SLOP = 0.05
TIMEOUT = 0.5
RATE = 15.0
FULL = "rgb+depth+thermal"
WARN = 1


@pytest.fixture(scope="module")
def frames(real_frames):
    return camera_frames(frame_inputs(real_frames[3]))


@pytest.fixture(scope="module")
def node(fast_engine, ros_harness):
    """Depth is required: a set that loses it is dropped as no_match, which an odd RGB must not cause."""
    params = {"slop": SLOP, "modality_timeout": TIMEOUT, "readmit_frames": 3, "diagnostics_period": 0.2}
    with running_node(fast_engine.root, ros_harness, required_modalities="depth", **params) as process:
        yield process


def _counter(harness, key: str) -> int:
    status = harness.latest_status("segmentation")
    return int(status.get(key, 0)) if status else 0


def _settled(harness, frames, tag: str) -> dict[str, int]:
    """Play until every sensor is used, and return the drop counters then (the bad input of an
    earlier test is counted by then: each waits for its counts)."""
    mark = harness.mark()
    harness.play([frames], count=10, rate=RATE, tag=tag)
    status = harness.wait_for_status("segmentation", lambda s: s["running_subset"] == FULL, mark)
    return {k: int(v) for k, v in status.items() if k.startswith("drops.")}


def _now(harness) -> tuple[int, int]:
    return divmod(harness.get_clock().now().nanoseconds, 1_000_000_000)


BAD_STAMPS = {
    "negative": lambda sec, nanosec: Time(sec=-1, nanosec=nanosec),
    "nanoseconds_of_a_second_or_more": lambda sec, nanosec: Time(sec=sec, nanosec=1_500_000_000),
    "zero": lambda sec, nanosec: Time(sec=0, nanosec=0),
    "far_ahead": lambda sec, nanosec: Time(sec=sec + 1_000, nanosec=nanosec),
}


@pytest.mark.parametrize("kind", BAD_STAMPS)
def test_a_bad_stamp_costs_only_its_own_image(node, ros_harness, frames, kind):
    harness = ros_harness
    before = _settled(harness, frames, f"pre_{kind}")
    bad = 3
    mark = harness.mark()
    for _ in range(bad):
        harness.play([frames], count=2, rate=RATE, tag=f"mid_{kind}")
        harness.publish("thermal", frames["thermal"], BAD_STAMPS[kind](*_now(harness)), "bad")
    harness.masks.clear()
    after = harness.mark()
    harness.play([frames], count=10, rate=RATE, tag=f"post_{kind}")
    assert len([m for m in harness.masks if m.frame_id.startswith(f"post_{kind}")]) >= 8
    # An OK thermal says only its bad stamps: it is used, neither stale nor readmitting.
    thermal = harness.wait_for_status("thermal", lambda s: s["message"].startswith("thermal bad stamps:"), after)
    assert thermal["level"] == WARN, thermal
    assert any(s["running_subset"] == FULL for s in harness.statuses("segmentation", after))
    status = harness.wait_for_status(
        "segmentation", lambda s: int(s.get("drops.bad_stamp", 0)) >= before.get("drops.bad_stamp", 0) + bad, mark
    )
    assert int(status["drops.bad_stamp"]) == before.get("drops.bad_stamp", 0) + bad
    assert int(status.get("drops.stamp_not_increasing", 0)) == before.get("drops.stamp_not_increasing", 0)
    assert node.process.poll() is None  # still running


def test_an_odd_sized_rgb_image_is_a_resolution_mismatch_and_costs_no_set(node, ros_harness, frames):
    harness = ros_harness
    before = _settled(harness, frames, "pre_odd")
    half = {**frames, "rgb": np.ascontiguousarray(frames["rgb"][::2, ::2])}
    odd = 3
    for index in range(odd):
        harness.play([frames], count=2, rate=RATE, tag="mid_odd")
        harness.play([half], count=1, rate=RATE, tag=f"odd{index}")
    harness.masks.clear()
    harness.play([frames], count=10, rate=RATE, tag="post_odd")
    harness.spin_for(0.5)
    assert len([m for m in harness.masks if m.frame_id.startswith("post_odd")]) >= 8
    assert all(m.shape == frames["rgb"].shape[:2] for m in harness.masks)
    expected = before.get("drops.resolution_mismatch", 0) + odd
    status = harness.wait_for_status("segmentation", lambda s: int(s.get("drops.resolution_mismatch", 0)) >= expected)
    assert int(status["drops.resolution_mismatch"]) == expected
    assert int(status.get("drops.no_match", 0)) == before.get("drops.no_match", 0)


def test_a_bag_that_loops_is_segmented_again_within_modality_timeout(node, ros_harness, frames):
    """Every camera's stamps go back 30 s at once and go on from there."""
    harness = ros_harness
    _settled(harness, frames, "pre_loop")
    harness.masks.clear()
    mark = harness.mark()
    loop_ns, published_at = 30_000_000_000, []
    next_time = time.monotonic()
    for index in range(int(RATE * (TIMEOUT + 1.0))):
        sec, nanosec = divmod(harness.get_clock().now().nanoseconds - loop_ns, 1_000_000_000)
        for modality in ("rgb", "depth", "thermal"):
            harness.publish(modality, frames[modality], Time(sec=sec, nanosec=nanosec), f"loop_{modality}_{index}")
        published_at.append(time.monotonic())
        next_time += 1.0 / RATE
        harness.spin_for(max(0.0, next_time - time.monotonic()))
    harness.spin_for(0.5)
    looped = [m for m in harness.masks if m.frame_id.startswith("loop_rgb_")]
    assert looped, "no mask after the stamps went back"
    assert looped[0].received - published_at[0] <= TIMEOUT + 0.3  # transport and inference on a busy CPU
    assert len(looped) >= (len(published_at) - RATE * TIMEOUT) * 0.8
    jumped = [f"clock_jumps.{m}" for m in FULL.split("+")]
    harness.wait_for_status("segmentation", lambda s: s["running_subset"] == FULL and set(jumped) <= set(s), mark)
