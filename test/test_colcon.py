"""README "Build with colcon": a real ``colcon build`` of this package and its installed node.

The checkout is copied into a throw-away workspace (``src/binseg_ros``) and built with the
colcon from the dev requirements (colcon-core + colcon-ros, which knows ament_python). The
test then reads the install tree the way ``ros2 run`` and ``ros2 launch`` do (ament index
marker, share/binseg_ros, lib/binseg_ros/<executable>), sources ``install/setup.sh`` like a
user, and starts the *installed* ``segment_node`` with no ``engine_dir``: it must find the
model colcon installed under share/ and answer the shipped demo frames with masks over DDS.

No ROS has to be sourced for the build: colcon-ros reads package.xml with catkin_pkg and an
ament_python package needs nothing from ament at build time, so the test runs colcon in the
test's own environment. ``--symlink-install`` is left off: the install tree holds copies,
as a robot's deployed workspace does, so nothing here can pass by reading the checkout.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from rosgraph import ros_environment

from binseg_ros.datasets import SAMPLE, camera_frames, list_ids, load_frame
from binseg_ros.engines.locate import DEFAULT_MODEL
from binseg_ros.engines.manifest import MANIFEST_NAME, Manifest
from binseg_ros.errors import NodeError

PACKAGE = "binseg_ros"
# Top-level entries of a checkout that are not the package's source (VCS, venv, caches,
# build outputs, training runs); everything else is copied as a user's clone would have it.
NOT_SOURCE = {"build", "install", "log", "runs", "demo_out"}


def _source_only(directory: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n == "__pycache__"}
    if Path(directory) == REPO:
        ignored |= {n for n in names if n.startswith(".") or n in NOT_SOURCE or n.endswith(".egg-info")}
    return ignored


class Workspace:
    """A built colcon workspace: its folders and what ``colcon build`` printed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.src = root / "src" / PACKAGE
        self.install = root / "install"
        self.prefix = self.install / PACKAGE  # the package's install prefix (isolated layout)
        self.share = self.prefix / "share" / PACKAGE
        self.output = ""

    def build(self) -> None:
        colcon = Path(sys.executable).with_name("colcon")  # installed beside this interpreter by scripts/setup --dev
        assert colcon.is_file(), f"{colcon} missing: run scripts/setup --dev"
        env = {**os.environ, "COLCON_HOME": str(self.root / ".colcon")}  # no user-wide colcon defaults or mixins
        result = subprocess.run(
            [
                str(colcon),
                "--log-base",
                str(self.root / "log"),
                "build",
                "--base-paths",
                str(self.root / "src"),
                "--build-base",
                str(self.root / "build"),
                "--install-base",
                str(self.install),
                "--event-handlers",
                "console_direct+",
            ],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.output = result.stdout + result.stderr
        assert result.returncode == 0, self.output

    def sourced_environment(self) -> dict[str, str]:
        """This environment after ``. install/setup.sh``, as a user's shell has it."""
        result = subprocess.run(
            ["sh", "-c", '. "$1" && env -0', "sh", str(self.install / "setup.sh")],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ),
        )
        return dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("colcon_ws"))
    shutil.copytree(REPO, ws.src, ignore=_source_only, symlinks=True)
    ws.build()
    return ws


def test_colcon_build_installs_what_ros2_run_and_launch_need(workspace: Workspace):
    ws = workspace
    # setup.py installs the index marker and package.xml itself: colcon-ros warns when it has to.
    assert "doesn't explicitly install" not in ws.output, ws.output
    assert "Finished <<< binseg_ros" in ws.output, ws.output

    marker = ws.prefix / "share/ament_index/resource_index/packages" / PACKAGE
    assert marker.is_file()
    assert filecmp.cmp(ws.share / "package.xml", REPO / "package.xml", shallow=False)

    for folder, patterns in (("launch", ["*.launch.py"]), ("config", ["*.yaml", "*.xml"])):
        source = sorted(p.name for pattern in patterns for p in (REPO / folder).glob(pattern))
        assert source, folder
        assert sorted(p.name for p in (ws.share / folder).iterdir()) == source
        for name in source:
            assert filecmp.cmp(ws.share / folder / name, REPO / folder / name, shallow=False), name
    assert (ws.share / "launch/segment.launch.py").is_file()
    assert (ws.share / "config/segment.yaml").is_file()

    # The shipped model, complete: every file its manifest lists is there with its sha256.
    engine = ws.share / "engines" / DEFAULT_MODEL
    assert filecmp.cmp(engine / MANIFEST_NAME, REPO / "engines" / DEFAULT_MODEL / MANIFEST_NAME, shallow=False)
    Manifest.load(engine).verify()

    for name in ("segment_node", "binseg"):
        executable = ws.prefix / "lib" / PACKAGE / name  # where `ros2 run binseg_ros <name>` looks
        assert executable.is_file() and os.access(executable, os.X_OK), executable
        assert executable.read_text().startswith("#!"), executable
    assert not (ws.prefix / "bin").exists()  # setup.cfg moves console scripts out of bin/

    # The Python package went into the install tree (not the checkout or the venv).
    (site_packages,) = ws.prefix.glob("lib/python3*/site-packages")
    assert (site_packages / PACKAGE / "ros" / "node.py").is_file()
    assert not list(ws.src.glob("*.egg-info"))  # nothing written into the source space


def test_sourced_workspace_resolves_package_share_and_code_to_the_install_tree(workspace: Workspace):
    """What ``ros2 run`` / ``ros2 launch`` / the node look up after ``. install/setup.sh``."""
    env = workspace.sourced_environment()
    assert env["AMENT_PREFIX_PATH"].split(os.pathsep)[0] == str(workspace.prefix)
    probe = (
        "import binseg_ros\n"
        "from ament_index_python.packages import get_package_prefix, get_package_share_directory\n"
        "from binseg_ros.engines.locate import locate_engine_dir\n"
        "print(binseg_ros.__file__)\n"
        "print(get_package_prefix('binseg_ros'))\n"
        "print(get_package_share_directory('binseg_ros'))\n"
        "print(locate_engine_dir())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=workspace.root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    module, prefix, share, engine = result.stdout.split()
    assert Path(module).is_relative_to(workspace.prefix), module
    assert Path(prefix) == workspace.prefix
    assert Path(share) == workspace.share
    assert Path(engine) == workspace.share / "engines" / DEFAULT_MODEL


def test_installed_segment_node_publishes_masks_for_the_demo_frames(workspace: Workspace, ros_harness, tmp_path):
    """``ros2 run binseg_ros segment_node`` after sourcing: the installed script, the installed
    package and, with no engine_dir, the installed model; real DDS in this test's own domain."""
    env = {**workspace.sourced_environment(), **ros_environment()}
    executable = workspace.prefix / "lib" / PACKAGE / "segment_node"
    log = tmp_path / "segment_node.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(executable), "--ros-args", "-p", "backend:=onnxruntime", "-p", "diagnostics_period:=0.25"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    frames = [camera_frames(load_frame(SAMPLE, frame_id)) for frame_id in list_ids(SAMPLE)]
    harness = ros_harness
    failure: Exception | None = None
    try:
        harness.wait_for_target(timeout=60.0)
        harness.masks.clear()
        sent = harness.play(frames, count=3 * len(frames), rate=5.0, tag="colcon")
        harness.spin_for(1.0)
        status = harness.wait_for_status("segmentation", lambda s: int(s["masks"]) > 0, harness.mark())
    except (NodeError, AssertionError) as exc:  # shown below with the node's own output
        failure = exc
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            rc = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            rc = process.wait()
    output = log.read_text()
    assert failure is None, f"{failure}\nsegment_node output:\n{output}"
    assert rc == 0 and "Traceback" not in output, output
    assert f"model {DEFAULT_MODEL}" in output, output  # found the installed model by itself
    masks = [m for m in harness.masks if m.stamp in sent]
    assert len(masks) >= len(sent) // 2, (len(masks), len(sent), output)
    height, width = frames[0]["rgb"].shape[:2]
    for mask in masks:
        assert mask.encoding == "mono8" and mask.shape == (height, width)
        assert set(np.unique(mask.data).tolist()) <= {0, 255}
    assert "rgb+depth+thermal" in str(status["last_mask_subset"]), status
