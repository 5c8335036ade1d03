"""segment_node over real rclpy and Fast DDS: sync, fallback, malformed input, the quality gate, shutdown."""

from __future__ import annotations

import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from conftest import frame_inputs
from rosgraph import running_node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from binseg_ros.core.drops import DropReason
from binseg_ros.datasets import camera_frames
from binseg_ros.degrade import Degradation, apply
from binseg_ros.ros.conversions import to_image
from binseg_ros.ros.malformed import malformed_image

SLOP = 0.05
TIMEOUT = 0.5
RATE = 15.0
STALE, WARN, OK = 3, 1, 0


@pytest.fixture(scope="module")
def frames(real_frames):
    return camera_frames(frame_inputs(real_frames[1]))


@pytest.fixture(scope="module")
def node(fast_engine, ros_harness):
    params = {"slop": SLOP, "modality_timeout": TIMEOUT, "readmit_frames": 3, "diagnostics_period": 0.2}
    with running_node(fast_engine.root, ros_harness, **params) as process:
        yield process


def counters(harness):
    return harness.latest_status("segmentation")


def test_synchronised_masks_carry_the_rgb_header(node, ros_harness, frames):
    harness = ros_harness
    harness.masks.clear()
    mark = harness.mark()
    sent = harness.play([frames], count=60, rate=RATE, jitter=SLOP / 2, tag="sync")
    harness.spin_for(1.0)
    ours = [m for m in harness.masks if m.frame_id.startswith("sync_")]
    assert len(ours) >= 0.95 * len(sent), f"{len(ours)} masks for {len(sent)} RGB frames"
    index = {stamp: i for i, stamp in enumerate(sent)}
    for mask in ours:
        assert mask.frame_id == f"sync_rgb_{index[mask.stamp]}"  # exactly an RGB frame's stamp and id
        assert mask.shape == frames["rgb"].shape[:2] and mask.encoding == "mono8"
        assert set(np.unique(mask.data).tolist()) <= {0, 255}
    status = harness.wait_for_status("segmentation", lambda s: s["active_subset"] == "rgb+depth+thermal", mark)
    assert status["level"] == OK


@pytest.mark.parametrize(
    ("dead", "survivors", "anchor"),
    [("thermal", "rgb+depth", "rgb"), ("depth", "rgb+thermal", "rgb"), ("rgb", "depth+thermal", "depth")],
)
def test_a_dead_sensor_falls_back_and_returns(node, ros_harness, frames, dead, survivors, anchor):
    harness = ros_harness
    mark = harness.mark()
    harness.play([frames], count=10, rate=RATE, tag=f"before_{dead}")
    harness.wait_for_status("segmentation", lambda s: s["active_subset"] == "rgb+depth+thermal", mark)
    harness.masks.clear()
    mark = harness.mark()
    alive = tuple(m for m in ("rgb", "depth", "thermal") if m != dead)
    stopped_at = time.monotonic()
    harness.play([frames], count=int(RATE * (TIMEOUT + 1.5)), rate=RATE, modalities=alive, tag=f"without_{dead}")
    fallback = [m for m in harness.masks if m.frame_id.startswith(f"without_{dead}_{anchor}")]
    assert fallback, f"no masks while {dead} was down"
    assert fallback[0].received - stopped_at <= TIMEOUT + 1.0
    assert fallback[-1].shape == frames[anchor].shape[:2]
    status = harness.wait_for_status("segmentation", lambda s: s["active_subset"] == survivors, mark)
    assert status["level"] == 1 and dead in status["message"]  # WARN: falling back
    harness.wait_for_status(dead, lambda s: s["level"] == STALE, mark)
    # The sensor returns: after the re-admission hysteresis the full subset is back.
    mark = harness.mark()
    harness.play([frames], count=15, rate=RATE, tag=f"after_{dead}")
    harness.wait_for_status("segmentation", lambda s: s["active_subset"] == "rgb+depth+thermal", mark)
    harness.wait_for_status(dead, lambda s: s["level"] == OK, mark)
    assert any(m.frame_id.startswith(f"after_{dead}_rgb") for m in harness.masks)


def _stamp(harness) -> Time:
    return harness.get_clock().now().to_msg()


def _malformed(kind: str, frames, harness) -> tuple[str, Image]:
    """(modality, message) for one kind of malformed input."""
    header = Header(stamp=_stamp(harness), frame_id="bad")
    if kind == "resolution_mismatch":
        small = np.ascontiguousarray(frames["thermal"][::2, ::2])
        return "thermal", to_image(small, "mono16", header)
    if kind == "depth_nonfinite":
        depth = frames["depth"].astype(np.float32) / 1000
        depth[:40] = np.nan
        depth[40:80] = np.inf
        return "depth", to_image(depth, "32FC1", header)
    return "thermal", malformed_image(DropReason(kind), header)


@pytest.mark.parametrize(
    "kind",
    [
        "bad_step",
        "bad_data_length",
        "unknown_encoding",
        "zero_size",
        "unsupported_encoding",
        "resolution_mismatch",
        "depth_nonfinite",
        "stamp_not_increasing",
    ],
)
def test_malformed_input_is_counted_and_good_frames_keep_flowing(node, ros_harness, frames, kind):
    harness = ros_harness
    harness.play([frames], count=5, rate=RATE, tag=f"pre_{kind}")
    harness.spin_for(0.5)
    key = f"sanitized.{kind}" if kind == "depth_nonfinite" else f"drops.{kind}"
    before = int(counters(harness).get(key, 0))
    bad = 3
    for _ in range(bad):  # each bad message right after good ones, so every sensor is alive
        harness.play([frames], count=2, rate=RATE, tag=f"mid_{kind}")
        if kind == "stamp_not_increasing":
            harness.publish("depth", frames["depth"], Time(sec=1, nanosec=0), "old")
        else:
            harness.publish_raw(*_malformed(kind, frames, harness))
    harness.masks.clear()
    harness.play([frames], count=10, rate=RATE, tag=f"post_{kind}")
    harness.spin_for(0.5)
    assert len([m for m in harness.masks if m.frame_id.startswith(f"post_{kind}")]) >= 8
    status = harness.wait_for_status("segmentation", lambda s: int(s.get(key, 0)) >= before + bad)
    assert int(status[key]) == before + bad
    assert node.process.poll() is None  # still running


def test_probability_and_overlay_only_while_subscribed(node, ros_harness, frames):
    harness = ros_harness
    harness.play([frames], count=10, rate=RATE, tag="quiet")
    harness.spin_for(0.5)
    quiet = harness.latest_status("segmentation")
    assert "published.probability" not in quiet and "published.overlay" not in quiet
    received: dict[str, list[Image]] = {"probability": [], "overlay": []}
    subs = [harness.create_subscription(Image, f"/segment_node/{name}", received[name].append, 10) for name in received]
    try:
        harness.spin_for(1.0)  # discovery
        harness.play([frames], count=10, rate=RATE, tag="loud")
        harness.spin_for(0.5)
    finally:
        for sub in subs:
            harness.destroy_subscription(sub)
    probability, overlay = received["probability"][-1], received["overlay"][-1]
    assert (probability.encoding, probability.height, probability.width) == ("32FC1", 480, 640)
    values = np.frombuffer(probability.data, np.float32)
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert (overlay.encoding, overlay.height, overlay.width) == ("rgb8", 480, 640)
    assert probability.header.frame_id.startswith("loud_rgb_")
    status = harness.wait_for_status("segmentation", lambda s: int(s.get("published.overlay", 0)) >= 5)
    assert int(status["published.probability"]) >= 5


def test_a_dark_rgb_is_left_out_while_masks_keep_coming(node, ros_harness, frames):
    """A camera in the dark still publishes: its frames are left out, depth + thermal segment."""
    harness = ros_harness
    harness.play([frames], count=10, rate=RATE, tag="lit")
    harness.wait_for_status("segmentation", lambda s: s["running_subset"] == "rgb+depth+thermal")
    dark = {**frames, "rgb": apply(Degradation("rgb", "dark"), frames["rgb"], np.random.default_rng(0))}
    harness.masks.clear()
    mark = harness.mark()
    harness.play([dark], count=30, rate=RATE, tag="dark")
    harness.spin_for(0.5)
    ours = [m for m in harness.masks if m.frame_id.startswith("dark_")]
    assert len(ours) >= 25, f"{len(ours)} masks for 30 sets with a dark RGB"
    assert all(m.frame_id.startswith("dark_depth_") for m in ours)  # rgb left out: depth anchors
    assert ours[-1].shape == frames["depth"].shape
    status = harness.wait_for_status("segmentation", lambda s: int(s.get("degraded.rgb.underexposed", 0)) >= 25, mark)
    assert status["level"] == WARN and "rgb degraded: underexposed" in status["message"]
    assert status["running_subset"] == "depth+thermal" and status["active_subset"] == "rgb+depth+thermal"
    rgb = harness.wait_for_status("rgb", lambda s: s["level"] == WARN, mark)
    assert rgb["message"] == "rgb degraded: underexposed" and rgb["degraded"] == "underexposed"
    # The lights come back: after the gate's hysteresis RGB is used again.
    mark = harness.mark()
    harness.play([frames], count=15, rate=RATE, tag="relit")
    back = harness.wait_for_status("segmentation", lambda s: s["running_subset"] == "rgb+depth+thermal", mark)
    assert back["level"] == OK
    harness.wait_for_status("rgb", lambda s: s["level"] == OK, mark)
    assert any(m.frame_id.startswith("relit_rgb_") for m in harness.masks)


def test_a_flapping_thermal_costs_no_masks_and_shows_its_miss_rate(node, ros_harness, frames):
    """Thermal on and off at 2 Hz (four frames on, four off at 15 Hz): the sets it misses go out
    without it instead of being lost, and diagnostics say it keeps missing sets."""
    harness = ros_harness
    harness.play([frames], count=10, rate=RATE, tag="steady")
    harness.wait_for_status("segmentation", lambda s: s["running_subset"] == "rgb+depth+thermal")
    harness.masks.clear()
    mark = harness.mark()
    sent = 0
    for flap in range(8):
        for modalities in (("rgb", "depth", "thermal"), ("rgb", "depth")):
            sent += len(harness.play([frames], count=4, rate=RATE, modalities=modalities, tag=f"flap{flap}"))
    harness.spin_for(0.5)
    ours = [m for m in harness.masks if m.frame_id.startswith("flap")]
    assert len(ours) >= 0.9 * sent, f"{len(ours)} masks for {sent} rgb frames"
    thermal = harness.wait_for_status("thermal", lambda s: "missed" in s["message"], mark)
    assert thermal["level"] == WARN and 0 < int(thermal["missed_sets"]) < int(thermal["expected_sets"])
    overall = harness.wait_for_status("segmentation", lambda s: "thermal missed" in s["message"], mark)
    # benched at that moment (the sets go without it), or back in them between relapses
    leads = ("fallback to rgb+depth (", "running on rgb+depth+thermal (")
    assert overall["level"] == WARN and overall["message"].startswith(leads), overall
