"""The node's parameters over real rclpy: NaN and inf stop start-up, a misspelt name is warned
about, and the live ones change the running core through ``set_parameters`` and the
``SetParameters`` service that ``ros2 param set`` calls, while a bad value is refused with its
reason and changes nothing."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import frame_inputs
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from binseg_ros.backends.torch import TorchBackend
from binseg_ros.core.frame import NS_PER_S, Arrival, Frame
from binseg_ros.core.quality import measure, measuring_view
from binseg_ros.core.runtime import SegmentationRuntime
from binseg_ros.core.segmenter import Segmentation, Segmenter
from binseg_ros.errors import ConfigError
from binseg_ros.modalities import MODALITIES
from binseg_ros.ros.node import SegmentNode
from binseg_ros.ros.param_updates import LiveSettings, watch_parameters
from binseg_ros.ros.params import PARAMS, declare_settings, warn_unknown_parameters

LIVE = {
    "threshold",
    "publish_probability",
    "publish_overlay",
    "slop",
    "modality_timeout",
    "readmit_frames",
    "max_delay",
    "quality.max_dark_fraction",
    "quality.max_clipped_fraction",
    "quality.max_detail_ratio",
    "quality.min_detail_ratio",
    "quality.min_valid_fraction",
    "quality.min_thermal_std",
    "quality.max_saturated_fraction",
}
PERIOD_NS = 100_000_000  # between sets: 10 Hz cameras
FLOATS = [spec.name for spec in PARAMS if isinstance(spec.default, float)]


@dataclass
class Running:
    """A node with the segment node's parameters, watched, over an inline runtime."""

    node: Node
    live: LiveSettings
    runtime: SegmentationRuntime
    published: list[Segmentation]

    def offer(self, frame: dict[str, np.ndarray], stamp_ns: int, offset_ns: int = 0) -> Segmentation:
        """One set, depth and thermal stamped ``offset_ns`` after RGB; returns the newest result."""
        for modality in MODALITIES:
            stamp = stamp_ns + (offset_ns if modality != "rgb" else 0)
            self.runtime.offer(Frame(modality, stamp, Arrival(stamp + 1_000_000), frame[modality]))
        return self.published[-1]


@pytest.fixture
def running(ros_harness, calibrated_net):
    node = Node("segment_params_under_test")
    settings = declare_settings(node)
    published: list[Segmentation] = []
    segmenter = Segmenter(TorchBackend(calibrated_net, (64, 96)), (64, 96), settings.threshold)
    runtime = SegmentationRuntime(
        segmenter, settings.sync_config(), published.append, threaded=False, quality=settings.quality_config()
    )
    yield Running(node, watch_parameters(node, settings, lambda: runtime), runtime, published)
    runtime.close()
    node.destroy_node()


@pytest.fixture(scope="module")
def frame(real_frames):
    return frame_inputs(real_frames[0])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", FLOATS)
def test_nan_and_inf_stop_startup_naming_the_parameter(ros_harness, name, value):
    node = Node("segment_nan_under_test", parameter_overrides=[Parameter(name, value=value)])
    try:
        with pytest.raises(ConfigError, match=f"parameter '{name}'"):
            declare_settings(node)
    finally:
        node.destroy_node()


def test_a_misspelt_parameter_is_warned_about_with_the_closest_name(ros_harness, capfd):
    given = [Parameter("threshhold", value=0.9), Parameter("quality.max_dark_fractoin", value=0.3)]
    node = Node("segment_typo_under_test", parameter_overrides=[*given, Parameter("use_sim_time", value=False)])
    try:
        settings = declare_settings(node)
        assert warn_unknown_parameters(node) == ["quality.max_dark_fractoin", "threshhold"]
        log = capfd.readouterr().err
        assert "unknown parameter 'threshhold' is ignored; did you mean 'threshold'?" in log
        assert "did you mean 'quality.max_dark_fraction'?" in log
        assert "use_sim_time" not in log  # rclpy's own, declared
        assert not node.has_parameter("threshhold") and settings.threshold != 0.9
    finally:
        node.destroy_node()


def test_only_the_live_parameters_are_writable(running):
    for spec in PARAMS:
        assert running.node.describe_parameter(spec.name).read_only == (spec.name not in LIVE), spec.name


def test_a_live_threshold_gives_the_next_mask(running, frame):
    loose = running.offer(frame, NS_PER_S)
    threshold = float(np.quantile(loose.probability, 0.75))
    (result,) = running.node.set_parameters([Parameter("threshold", value=threshold)])
    assert result.successful, result.reason
    strict = running.offer(frame, NS_PER_S + PERIOD_NS)
    assert np.array_equal(strict.mask > 0, strict.probability > threshold)
    assert 0 < np.count_nonzero(strict.mask) < np.count_nonzero(loose.mask)
    assert running.live.current.threshold == threshold == running.node.get_parameter("threshold").value


def test_a_live_slop_changes_which_frames_are_matched(running, frame):
    """Depth and thermal stamped 30 ms after RGB: not matched within a 20 ms slop, matched within 40 ms."""
    running.node.set_parameters([Parameter("slop", value=0.02)])
    apart = 30_000_000
    assert running.offer(frame, NS_PER_S, apart).subset == ("rgb",)
    (result,) = running.node.set_parameters([Parameter("slop", value=0.04)])
    assert result.successful, result.reason
    assert running.offer(frame, NS_PER_S + PERIOD_NS, apart).subset == MODALITIES
    assert running.runtime.sync.config.slop == 0.04


def test_a_live_gate_limit_leaves_a_sensor_out_of_the_next_set(running, frame):
    assert running.offer(frame, NS_PER_S).left_out == {}
    dark = measure("rgb", measuring_view("rgb", frame["rgb"]))["dark_fraction"]
    assert dark > 0, "the frame has no near-black pixel to set the limit below"
    (result,) = running.node.set_parameters([Parameter("quality.max_dark_fraction", value=dark / 2)])
    assert result.successful, result.reason
    darker = {**frame, "thermal": frame["thermal"] + 1}  # a change elsewhere: RGB is not frozen
    result = running.offer(darker, NS_PER_S + PERIOD_NS)
    assert result.subset == ("depth", "thermal") and result.left_out["rgb"].value == "underexposed"


def test_publish_flags_are_live_settings(running):
    (result,) = running.node.set_parameters([Parameter("publish_overlay", value=False)])
    assert result.successful and running.live.current.publish_overlay is False
    assert running.live.current.publish_probability is True


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("threshold", math.nan, "out of range"),
        ("modality_timeout", math.inf, "out of range"),
        ("slop", "wide", "Wrong parameter type"),
        ("readmit_frames", 0, "out of range"),
        ("quality.min_detail_ratio", 3.0, "quality.min_detail_ratio must be >= 0 and below quality.max_detail_ratio"),
        ("buffer_size", 20, "read-only"),
    ],
)
def test_a_bad_value_is_refused_with_its_reason_and_changes_nothing(running, name, value, reason):
    before = running.live.current
    old = running.node.get_parameter(name).value
    sync, threshold = running.runtime.sync.config, running.runtime.segmenter.threshold
    quality = running.runtime.gate.config
    (result,) = running.node.set_parameters([Parameter(name, value=value)])
    assert not result.successful and reason in result.reason
    assert running.node.get_parameter(name).value == old and running.live.current is before
    assert running.runtime.sync.config is sync and running.runtime.segmenter.threshold == threshold
    assert running.runtime.gate.config is quality


def _ros2_param_set(client_node: Node, target: Node, parameter: Parameter):
    """What ``ros2 param set`` does: a ``SetParameters`` request to the node's service."""
    client = client_node.create_client(SetParameters, f"{target.get_fully_qualified_name()}/set_parameters")
    executor = SingleThreadedExecutor()
    executor.add_node(target)
    executor.add_node(client_node)
    try:
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(SetParameters.Request(parameters=[parameter.to_parameter_msg()]))
        executor.spin_until_future_complete(future, timeout_sec=10.0)
        assert future.done(), "no answer from the parameter service"
        (result,) = future.result().results
        return result
    finally:
        executor.remove_node(target)
        executor.remove_node(client_node)
        client_node.destroy_client(client)


def test_ros2_param_set_is_refused_or_applied_over_the_service(running, frame):
    client = Node("param_setter")
    try:
        old = running.node.get_parameter("quality.min_detail_ratio").value
        refused = _ros2_param_set(client, running.node, Parameter("quality.min_detail_ratio", value=3.0))
        assert not refused.successful and "below quality.max_detail_ratio" in refused.reason
        assert running.node.get_parameter("quality.min_detail_ratio").value == old
        assert running.live.current.quality_min_detail_ratio == old
        loose = running.offer(frame, NS_PER_S)
        threshold = float(np.quantile(loose.probability, 0.75))
        applied = _ros2_param_set(client, running.node, Parameter("threshold", value=threshold))
        assert applied.successful, applied.reason
        strict = running.offer(frame, NS_PER_S + PERIOD_NS)
        assert 0 < np.count_nonzero(strict.mask) < np.count_nonzero(loose.mask)
        assert running.node.get_parameter("threshold").value == threshold
    finally:
        client.destroy_node()


def test_without_a_runtime_a_change_waits_in_the_settings(ros_harness):
    """A lifecycle node not configured has no runtime: what configure will read changes, and a
    contradiction is refused all the same."""
    node = Node("segment_unconfigured_under_test")
    try:
        live = watch_parameters(node, declare_settings(node), lambda: None)
        (accepted,) = node.set_parameters([Parameter("slop", value=0.08)])
        assert accepted.successful and live.current.sync_config().slop == 0.08
        (refused,) = node.set_parameters([Parameter("quality.max_detail_ratio", value=0.5)])
        assert not refused.successful and "below quality.max_detail_ratio" in refused.reason
        assert live.current.quality_max_detail_ratio == node.get_parameter("quality.max_detail_ratio").value
    finally:
        node.destroy_node()


def test_the_segment_node_warns_about_a_typo_and_takes_live_changes(ros_harness, fast_engine, capfd):
    node = SegmentNode(
        parameter_overrides=[
            Parameter("engine_dir", value=str(fast_engine.root)),
            Parameter("backend", value="onnxruntime"),
            Parameter("threshhold", value=0.9),
        ]
    )
    try:
        node.start()
        assert "unknown parameter 'threshhold' is ignored; did you mean 'threshold'?" in capfd.readouterr().err
        (applied,) = node.set_parameters([Parameter("threshold", value=0.8)])
        assert applied.successful and node.settings.threshold == 0.8
        (out_of_range,) = node.set_parameters([Parameter("threshold", value=1.5)])
        (read_only,) = node.set_parameters([Parameter("backend", value="torch")])
        assert not out_of_range.successful and not read_only.successful
        assert node.settings.threshold == 0.8 and node.settings.backend == "onnxruntime"
    finally:
        node.close()
