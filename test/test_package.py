"""The ROS 2 package shape: package.xml format 3 / ament_python, and what setup.py installs."""

from __future__ import annotations

import configparser
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

from conftest import REPO

import binseg_ros


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "binseg_ros"
    assert root.find("export").findtext("build_type") == "ament_python"
    depends = {e.text for e in root.iter("exec_depend")}
    assert {"rclpy", "sensor_msgs", "diagnostic_msgs", "launch_ros"} <= depends
    assert root.findtext("version") == binseg_ros.__version__


def test_wheel_installs_what_ros2_run_and_launch_expect(tmp_path):
    """Build the real wheel and read what it would install (installing it would replace the
    editable install of the running venv): ament index marker, package.xml, launch and
    config files under share/binseg_ros, and the console scripts.

    colcon installs console scripts into ``lib/binseg_ros`` (where ``ros2 run`` looks) because
    of setup.cfg; pip puts them in ``bin``.
    """
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("binseg_ros-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    data = "binseg_ros-" + binseg_ros.__version__ + ".data/data/share/"
    assert data + "ament_index/resource_index/packages/binseg_ros" in names
    assert data + "binseg_ros/package.xml" in names
    for folder, patterns in (("launch", ["*.launch.py"]), ("config", ["*.yaml", "*.xml"])):
        shipped = {f"{data}binseg_ros/{folder}/{p.name}" for pattern in patterns for p in (REPO / folder).glob(pattern)}
        assert shipped
        assert {n for n in names if n.startswith(f"{data}binseg_ros/{folder}/")} == shipped
    example = {f"{data}binseg_ros/calibration/example/{p.name}" for p in (REPO / "calibration/example").glob("*.yaml")}
    assert {"rig.yaml", "rgb.yaml", "depth.yaml", "thermal.yaml"} <= {n.rsplit("/", 1)[1] for n in example}
    assert {n for n in names if n.startswith(f"{data}binseg_ros/calibration/")} == example
    assert "binseg = binseg_ros.cli:main" in scripts
    assert "binseg_ros/py.typed" in names  # type checkers of users' code read our annotations
    assert "segment_node = binseg_ros.ros.segment_node:main" in scripts
    assert {f"binseg_ros/sample/{d}/51.png" for d in ("RGB", "Depth", "Thermal")} <= names
    kernels = {"frequency_split.cu", "frequency_split.h", "frequency_split_plugin.cpp"}  # built on the robot
    assert {f"binseg_ros/kernels/{name}" for name in kernels} <= names
    engine = f"{data}binseg_ros/engines/binseg_s/"  # the shipped trained model, where locate() looks
    assert {
        engine + f
        for f in (
            "manifest.yaml",
            "weights.pt",
            "tensors.bin",
            "model_card.md",
            "rgb_depth_thermal.matmul.onnx",
            "thermal.fft.onnx",
        )
    } <= names
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert config["develop"]["script_dir"] == config["install"]["install_scripts"] == "$base/lib/binseg_ros"
