"""segment_node on a real rig over real rclpy: cameras with their own sizes and poses, registered
from the rig file, or with intrinsics from camera_info topics that arrive late or contradict the images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import frame_inputs
from rclpy.parameter import Parameter
from rclpy.qos import ReliabilityPolicy, qos_profile_sensor_data
from rosgraph import start_node
from sensor_msgs.msg import CameraInfo

from binseg_ros.bags.rig_render import render_into_rig
from binseg_ros.calibration.files import load_rig
from binseg_ros.calibration.model import CameraInfo as Intrinsics
from binseg_ros.datasets import camera_frames
from binseg_ros.ros.node import SegmentNode
from binseg_ros.ros.process import NodeProcess

RIG = Path(__file__).resolve().parents[1] / "calibration" / "example" / "rig.yaml"
RATE = 10.0
OK, ERROR = 0, 2


@pytest.fixture(scope="module")
def rig_frames(real_frames):
    """One MM5 frame as the example rig's three cameras publish it."""
    frame = frame_inputs(real_frames[1])
    return camera_frames({**frame, **render_into_rig(frame, load_rig(RIG))})


def _start(engine, harness, **params) -> NodeProcess:
    return start_node(engine.root, harness, calibration_file=RIG, diagnostics_period=0.2, **params)


def _message(info: Intrinsics, width: int | None = None, height: int | None = None) -> CameraInfo:
    msg = CameraInfo(width=width or info.width, height=height or info.height, distortion_model=info.distortion_model)
    msg.k, msg.d, msg.r = info.K.reshape(-1).tolist(), info.D.reshape(-1).tolist(), info.R.reshape(-1).tolist()
    msg.p = np.hstack([info.K, np.zeros((3, 1))]).reshape(-1).tolist()
    return msg


def test_rig_file_registers_every_camera_into_the_reference(fast_engine, ros_harness, rig_frames):
    harness = ros_harness
    assert rig_frames["depth"].shape != rig_frames["rgb"].shape[:2] != rig_frames["thermal"].shape
    node = _start(fast_engine, harness)
    try:
        harness.masks.clear()
        mark = harness.mark()
        harness.play([rig_frames], count=20, rate=RATE, tag="rig")
        harness.spin_for(0.5)
        masks = [m for m in harness.masks if m.frame_id.startswith("rig_rgb")]
        assert len(masks) >= 15 and {m.shape for m in masks} == {(480, 640)}
        status = harness.wait_for_status("segmentation", lambda s: s["last_mask_subset"] != "none", since=mark)
        assert status["last_mask_subset"] == "rgb+depth+thermal"  # fused, not RGB alone
        assert "drops.resolution_mismatch" not in status
        calibration = harness.wait_for_status("calibration", lambda s: True, since=mark)
        assert calibration["level"] == OK and "registered" in str(calibration["message"])
    finally:
        assert node.stop() == 0, node.output


def test_intrinsics_from_topics_start_the_node_when_complete(fast_engine, ros_harness, rig_frames):
    harness = ros_harness
    rig = load_rig(RIG)
    node = _start(fast_engine, harness, camera_info_source="topics")
    # As drivers publish them: best effort, beside each image topic.
    pubs = {m: harness.create_publisher(CameraInfo, f"/{m}/camera_info", qos_profile_sensor_data) for m in rig.cameras}
    try:
        harness.masks.clear()
        mark = harness.mark()
        harness.play([rig_frames], count=5, rate=RATE, tag="early")
        harness.spin_for(0.5)
        assert harness.masks == []  # incomplete calibration: nothing is published ...
        waiting = harness.wait_for_status("calibration", lambda s: s["level"] == ERROR, since=mark)
        assert "waiting for /rgb/camera_info, /depth/camera_info, /thermal/camera_info" in str(waiting["message"])
        counted = harness.wait_for_status(  # ... and every image is counted (5 sets of 3)
            "segmentation", lambda s: int(s.get("drops.calibration_incomplete", 0)) >= 15, since=mark
        )
        assert int(counted["masks"]) == 0
        # A depth camera_info that contradicts the images: the calibration completes, depth is refused.
        for modality, pub in pubs.items():
            info = rig.cameras[modality].info
            pub.publish(_message(info, *((640, 480) if modality == "depth" else (None, None))))
        harness.spin_for(1.0)
        mark = harness.mark()
        harness.play([rig_frames], count=10, rate=RATE, tag="late")
        harness.spin_for(0.5)
        assert [m for m in harness.masks if m.frame_id.startswith("late_rgb")]  # masks flow, without depth
        contradiction = harness.wait_for_status("calibration", lambda s: s["level"] == ERROR, since=mark)
        assert "depth images are 424x240, its calibration says 640x480" in str(contradiction["message"])
        segmentation = harness.wait_for_status(
            "segmentation", lambda s: "drops.resolution_mismatch" in s and s["last_mask_subset"] != "none", since=mark
        )
        assert segmentation["last_mask_subset"] == "rgb+thermal"
    finally:
        for pub in pubs.values():
            harness.destroy_publisher(pub)
        assert node.stop() == 0, node.output


def test_camera_info_follows_a_remapped_image_topic_with_the_images_qos(fast_engine, ros_harness):
    """Remapping an image topic moves its camera_info with it (image_transport's pairing), and
    the camera_info subscriptions take the images' best-effort QoS, which any driver reaches,
    unless a topic's own qos_overrides say otherwise: for that topic alone."""
    params = {
        "engine_dir": str(fast_engine.root),
        "calibration_file": str(RIG),
        "camera_info_source": "topics",
        "qos_overrides./cam/color/camera_info.subscription.reliability": "reliable",  # this topic alone
    }
    node = SegmentNode(
        context=ros_harness.context,
        cli_args=["--ros-args", "-r", "rgb/image:=/cam/color/image_raw"],
        parameter_overrides=[Parameter(name, value=value) for name, value in params.items()],
    )
    try:
        node.start()
        topics = {sub.topic_name for sub in node.subscriptions}
        assert {"/cam/color/camera_info", "/depth/camera_info", "/thermal/camera_info"} <= topics
        assert "/rgb/camera_info" not in topics
        (overridden,) = node.get_subscriptions_info_by_topic("/cam/color/camera_info")
        assert overridden.qos_profile.reliability == ReliabilityPolicy.RELIABLE
        for topic in ("/depth/camera_info", "/thermal/camera_info"):
            (endpoint,) = node.get_subscriptions_info_by_topic(topic)
            assert endpoint.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT, topic
    finally:
        node.close()
