"""The ROS 2 package shape: package.xml format 3 / ament_python, and what setup.py installs."""

from __future__ import annotations

import configparser
import subprocess
import sys
import xml.etree.ElementTree as ET

from conftest import REPO


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "binseg_ros"
    assert root.find("export").findtext("build_type") == "ament_python"
    depends = {e.text for e in root.iter("exec_depend")}
    assert {"rclpy", "sensor_msgs", "diagnostic_msgs", "launch_ros"} <= depends
    import binseg_ros

    assert root.findtext("version") == binseg_ros.__version__


def test_install_layout_is_what_ros2_run_and_launch_expect(tmp_path):
    """A real install (pip, as the README does): ament index marker, package.xml, share files.

    colcon installs console scripts into ``lib/binseg_ros`` (where ``ros2 run`` looks) because
    of setup.cfg; pip puts them in ``bin``. Both are checked.
    """
    prefix = tmp_path / "install"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--prefix", str(prefix), str(REPO)],
        check=True,
        capture_output=True,
    )
    share = prefix / "share"
    assert (share / "ament_index" / "resource_index" / "packages" / "binseg_ros").is_file()
    assert (share / "binseg_ros" / "package.xml").is_file()
    assert (prefix / "bin" / "binseg").is_file()
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert config["develop"]["script_dir"] == config["install"]["install_scripts"] == "$base/lib/binseg_ros"
    for folder in ("launch", "config"):
        installed = sorted(p.name for p in (share / "binseg_ros" / folder).glob("*"))
        shipped = sorted(p.name for p in (REPO / folder).glob("*.launch.py" if folder == "launch" else "*.yaml"))
        assert installed == shipped
