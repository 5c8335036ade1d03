"""segment_node start-up, overload, sim time and shutdown, each in its own node process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
import torch
import yaml
from builtin_interfaces.msg import Time
from conftest import frame_inputs
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.qos import ReliabilityPolicy
from rosgraph import ros_environment
from rosgraph_msgs.msg import Clock

from binseg_ros.datasets import camera_frames
from binseg_ros.engines.locate import DEFAULT_MODEL
from binseg_ros.hashing import sha256_file
from binseg_ros.ros.node import SegmentNode
from binseg_ros.ros.params import PARAMS
from binseg_ros.ros.process import NodeProcess

SHIPPED = Path(__file__).resolve().parents[1] / "engines" / DEFAULT_MODEL


@pytest.fixture(scope="module")
def frames(real_frames):
    return camera_frames(frame_inputs(real_frames[2]))


def test_overload_keeps_latency_bounded_and_counts_drops(engine_folder, ros_harness, frames):
    """480x640 fft graphs take ~0.4 s on this CPU: far slower than 15 Hz input."""
    node = NodeProcess(engine_folder.root, ros_environment(), frequency_form="fft", diagnostics_period=0.2)
    harness = ros_harness
    try:
        harness.wait_for_target()
        harness.masks.clear()
        sent_at = harness.play([frames], count=75, rate=15.0, tag="load")
        last_publish = time.monotonic()
        harness.spin_for(2.0)
        latencies = [m.received - sent_at[m.stamp] for m in harness.masks if m.stamp in sent_at]
        assert len(latencies) >= 3
        # Bounded: the last masks are no later than the first ones (no backlog builds up) ...
        assert max(latencies[-3:]) <= 2 * max(latencies[:3]) + 0.3
        # ... and nothing queued keeps trickling out after the input stops.
        assert all(m.received - last_publish < 1.5 for m in harness.masks)
        # Every emitted set is either published or counted as superseded.
        drained = harness.mark()
        status = harness.wait_for_status(
            "segmentation",
            lambda s: int(s["sets"]) == int(s["masks"]) + int(s.get("drops.superseded", 0)),
            drained,
        )
        assert int(status["drops.superseded"]) > int(status["masks"])
    finally:
        rc = node.stop()  # SIGINT while inference is busy
    assert rc == 0 and "Traceback" not in node.output, node.output


def test_sigint_shutdown_is_clean_and_quick(fast_engine, ros_harness, frames):
    node = NodeProcess(fast_engine.root, ros_environment())
    ros_harness.wait_for_target()
    ros_harness.play([frames], count=5, rate=15.0, tag="bye")
    start = time.monotonic()
    rc = node.stop(timeout=10.0)
    assert rc == 0
    assert time.monotonic() - start < 5.0
    assert "Traceback" not in node.output and "Error" not in node.output, node.output


def test_the_runtimes_own_warnings_are_ros_log_lines(fast_engine, ros_harness, frames):
    """The ROS-free runtime logs through Python's logging; in the node that must land in the ROS
    log with its severity, not bare on stderr. Cameras at 5 Hz against a 0.3 s timeout are warned about."""
    node = NodeProcess(fast_engine.root, ros_environment(), modality_timeout=0.3, diagnostics_period=0.2)
    ros_harness.wait_for_target()
    ros_harness.play([frames], count=6, rate=5.0, tag="slow")
    ros_harness.spin_for(0.5)
    assert node.stop() == 0, node.output
    lines = [line for line in node.output.splitlines() if "modality_timeout 0.3 s is not above" in line]
    assert lines, node.output
    assert all(line.startswith("[WARN]") and "[segment_node]: binseg_ros.core.runtime: " in line for line in lines)


def test_use_sim_time_follows_the_clock_topic(fast_engine, ros_harness, frames):
    node = NodeProcess(fast_engine.root, ros_environment(), use_sim_time=True, diagnostics_period=0.2)
    harness = ros_harness
    clock = harness.create_publisher(Clock, "/clock", 10)
    try:
        harness.wait_for_target()
        harness.masks.clear()
        harness.diagnostics.clear()
        sim = 1000.0
        for index in range(40):
            stamp = Time(sec=int(sim), nanosec=int((sim % 1) * 1e9))
            clock.publish(Clock(clock=stamp))
            for modality in ("rgb", "depth", "thermal"):
                harness.publish(modality, frames[modality], stamp, f"sim_{modality}_{index}")
            harness.spin_for(1 / 15)
            sim += 1 / 15
        harness.spin_for(0.5)
        assert len([m for m in harness.masks if m.frame_id.startswith("sim_rgb")]) >= 30
        assert harness.diagnostics, "no diagnostics under sim time"
        assert all(1000 <= d.header.stamp.sec <= 1003 for d in harness.diagnostics)
    finally:
        harness.destroy_publisher(clock)
        assert node.stop() == 0, node.output


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": 1.5}, "parameter 'threshold': must be within [0, 1]"),
        ({"readmit_frames": 0}, "parameter 'readmit_frames': must be within [1, 10000]"),
        ({"slop": "wide"}, "parameter 'slop': expected a float"),
        ({"backend": "openvino"}, "parameter 'backend' = 'openvino': must be one of auto, onnxruntime"),
        ({"modalities": "rgb+lidar"}, "parameter 'modalities' = 'rgb+lidar': unknown modality 'lidar'"),
        ({"modalities": "rgb", "required_modalities": "thermal"}, "names thermal, which 'modalities' does not"),
        ({"qos.reliability": "sometimes"}, "parameter 'qos.reliability'"),
        ({"backend": "tensorrt"}, "the tensorrt backend needs the TensorRT Python package"),  # no TensorRT here
    ],
)
def test_invalid_parameters_stop_startup_naming_them(fast_engine, params, message):
    # The full TensorRT (absent here), even where TensorRT-RTX is installed.
    node = NodeProcess(fast_engine.root, {**ros_environment(), "BINSEG_TENSORRT": "tensorrt"}, **params)
    assert node.wait() == 1
    assert message in node.output and "Traceback" not in node.output, node.output


def test_missing_engine_folder_is_a_clear_startup_error(tmp_path):
    node = NodeProcess(tmp_path / "nowhere", ros_environment())
    assert node.wait() == 1
    assert "no manifest.yaml in" in node.output and "binseg export" in node.output


def _run_entry_point(*ros_args: str) -> tuple[int, str]:
    """``python -m binseg_ros.ros.segment_node --ros-args ...`` to its end: exit code and everything it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "binseg_ros.ros.segment_node", "--ros-args", *ros_args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **ros_environment()},
    )
    return done.returncode, done.stdout + done.stderr


def _engine_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SHIPPED, tmp_path / "engine"))


def _edit_manifest(folder: Path, edit) -> None:
    path = folder / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _binary_manifest(tmp_path: Path) -> tuple[list[str], str]:
    folder = _engine_copy(tmp_path)
    with (folder / "manifest.yaml").open("ab") as file:
        file.write(b"\x00\xff\xfe\x80 binary")
    return ["-p", f"engine_dir:={folder}"], "manifest.yaml: not a text file (byte"


def _other_input_size(tmp_path: Path) -> tuple[list[str], str]:
    folder = _engine_copy(tmp_path)
    _edit_manifest(folder, lambda data: data.update(input_size=[200, 320]))
    return ["-p", f"engine_dir:={folder}"], "the manifest's subset 'rgb+depth+thermal' at input_size 200x320 needs"


def _swapped_graph(tmp_path: Path) -> tuple[list[str], str]:
    """rgb.matmul.onnx replaced by the rgb+depth graph, its sha256 updated to match."""
    folder = _engine_copy(tmp_path)
    shutil.copyfile(folder / "rgb_depth.matmul.onnx", folder / "rgb.matmul.onnx")
    digest = sha256_file(folder / "rgb.matmul.onnx")
    _edit_manifest(folder, lambda data: data["subsets"]["rgb"]["onnx"]["matmul"].update(sha256=digest))
    return ["-p", f"engine_dir:={folder}"], "rgb.matmul.onnx takes rgb 1x3x240x320, depth 1x1x240x320; the manifest's"


def _missing_params_file(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "absent.yaml"
    return ["--params-file", str(path)], f"Couldn't parse params file: '--params-file {path}'. Error: Error opening"


def _invalid_params_file(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "broken.yaml"
    path.write_text("/**:\n  ros__parameters:\n    threshold: [0.5\n")
    return ["--params-file", str(path)], f"Couldn't parse params file: '--params-file {path}'"


def _torch_device(device: str, message: str):
    def case(tmp_path: Path) -> tuple[list[str], str]:
        return ["-p", f"engine_dir:={SHIPPED}", "-p", "backend:=torch", "-p", f"device:={device}"], message

    return case


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            _torch_device("cuda", "device 'cuda': no CUDA device usable here"),
            id="torch-cuda-without-cuda",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is usable here"),
        ),
        pytest.param(_torch_device("banana", "device 'banana' is not a device name"), id="torch-device-banana"),
        pytest.param(_missing_params_file, id="missing-params-file"),
        pytest.param(_invalid_params_file, id="invalid-params-file"),
        pytest.param(_binary_manifest, id="binary-manifest"),
        pytest.param(_other_input_size, id="manifest-input-size-the-graphs-lack"),
        pytest.param(_swapped_graph, id="graph-of-another-subset"),
    ],
)
def test_a_startup_error_is_one_fatal_line_and_exit_code_1(tmp_path, case):
    ros_args, message = case(tmp_path)
    code, output = _run_entry_point(*ros_args)
    lines = output.strip().splitlines()
    assert code == 1, output
    assert len(lines) == 1 and "[FATAL]" in lines[0] and "cannot start: " in lines[0], output
    assert message in lines[0], output


def test_qos_overrides_set_each_topic_and_win_over_the_qos_parameters(ros_harness):
    """``qos.reliability`` (best effort) sets every input; ``qos_overrides.<topic>`` one topic, by its
    resolved name, and wins. In a namespace of its own, so no other segment_node on the graph counts."""
    ns = f"/qos{os.getpid()}"
    overrides = {
        f"qos_overrides.{ns}/rgb/image.subscription.reliability": "reliable",
        f"qos_overrides.{ns}/segment_node/mask.publisher.reliability": "best_effort",
    }
    node = NodeProcess(SHIPPED, ros_environment(), remaps={"__ns": ns}, **overrides)
    subscriptions, publishers = ros_harness.get_subscriptions_info_by_topic, ros_harness.get_publishers_info_by_topic
    try:
        qos = _wait_for_endpoints(
            ros_harness,
            ns,
            {
                f"{ns}/rgb/image": subscriptions,
                f"{ns}/depth/image": subscriptions,
                f"{ns}/segment_node/mask": publishers,
                f"{ns}/segment_node/probability": publishers,
            },
        )
        assert qos[f"{ns}/rgb/image"].reliability == ReliabilityPolicy.RELIABLE  # the override
        assert qos[f"{ns}/depth/image"].reliability == ReliabilityPolicy.BEST_EFFORT  # qos.reliability
        assert qos[f"{ns}/segment_node/mask"].reliability == ReliabilityPolicy.BEST_EFFORT  # the override
        assert qos[f"{ns}/segment_node/probability"].reliability == ReliabilityPolicy.RELIABLE  # the node's default
    finally:
        assert node.stop() == 0, node.output


def _wait_for_endpoints(harness, namespace: str, lookups: dict, timeout: float = 30.0) -> dict:
    """``{topic: QoS}`` of segment_node's endpoint on each topic, once the graph shows them all.

    Read from the graph, not from matching: a reliable subscription never matches the harness's
    best-effort camera publishers."""
    deadline = time.monotonic() + timeout
    while True:
        found = {
            topic: endpoint.qos_profile
            for topic, lookup in lookups.items()
            for endpoint in lookup(topic)
            if (endpoint.node_name, endpoint.node_namespace) == ("segment_node", namespace)
        }
        if len(found) == len(lookups):
            return found
        assert time.monotonic() < deadline, f"segment_node endpoints after {timeout} s: {sorted(found)}"
        harness.spin_for(0.1)


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_params_file_lists_every_declared_parameter_at_its_default(fast_engine):
    """Loads config/segment.yaml through rcl itself, into a real node."""
    path = Path(__file__).resolve().parents[1] / "config" / "segment.yaml"
    keys = _flatten(yaml.safe_load(path.read_text())["/**"]["ros__parameters"])
    declared = {spec.name: spec for spec in PARAMS}
    assert set(keys) <= set(declared), f"undeclared keys: {set(keys) - set(declared)}"
    assert set(keys) == set(declared), f"parameters missing from the file: {set(declared) - set(keys)}"
    for name, value in keys.items():
        assert type(value) is type(declared[name].default), name
        assert value == declared[name].default, (
            f"{name}: the file says {value!r}, the node declares {declared[name].default!r}"
        )

    context = Context()
    rclpy.init(context=context, args=["--ros-args", "--params-file", str(path)])
    try:
        node = SegmentNode(context=context, parameter_overrides=[Parameter("engine_dir", value=str(fast_engine.root))])
        try:
            for name, value in keys.items():
                if name == "engine_dir":
                    continue
                parameter = node.get_parameter(name)
                assert parameter.value == value, name
                assert parameter.type_ == Parameter.Type.from_parameter_value(declared[name].default), name
                if parameter.type_ in (Parameter.Type.DOUBLE, Parameter.Type.INTEGER):  # ros2 param describe shows it
                    descriptor = node.describe_parameter(name)
                    assert descriptor.floating_point_range or descriptor.integer_range, f"{name} has no range"
        finally:
            node.close()
    finally:
        rclpy.shutdown(context=context)
