"""Running ``segment_node`` as a child process on this host (demo, tests, replay, bench).

The child is started exactly as ``ros2 run binseg_ros segment_node`` starts it, with
``-p name:=value`` parameters, and stopped with SIGINT like Ctrl-C. Both ends of the
conversation (the child and this process's player) must see the same ROS environment:
the child gets it through ``env``; this process through :func:`use_local_ros_environment`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

from binseg_ros.engines.locate import candidate_roots

FASTDDS_PROFILE = "fastdds_localhost.xml"


def fastdds_profile() -> Path:
    """The shipped Fast DDS profile (shared memory + loopback UDP), installed or in the checkout."""
    for engines_root in candidate_roots():
        path = engines_root.parent / "config" / FASTDDS_PROFILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{FASTDDS_PROFILE} not found next to any of {candidate_roots()}")


def local_ros_environment(domain_id: int | None = None) -> dict[str, str]:
    """Environment for ROS traffic that stays on this host and moves images through shared memory.

    Values the user already set win, except ``domain_id`` when given.
    """
    env = {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
        "FASTRTPS_DEFAULT_PROFILES_FILE": os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE", str(fastdds_profile())),
        "RCUTILS_LOGGING_BUFFERED_STREAM": "0",
    }
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def use_local_ros_environment(domain_id: int | None = None) -> dict[str, str]:
    """Put :func:`local_ros_environment` into this process's ``os.environ``; returns it for the child.

    This mutates the process environment on purpose, and is the one place that does: rclpy
    has no API for most of these settings. ``rclpy.init()`` and the DDS participant it creates read
    ``ROS_DOMAIN_ID``, ``ROS_AUTOMATIC_DISCOVERY_RANGE`` and ``FASTRTPS_DEFAULT_PROFILES_FILE``
    from the environment, so a player in this process finds a :class:`NodeProcess` started
    with the same ``env`` only if this runs before ``rclpy.init()``. Called once, at the top
    of the commands that start their own node (demo, replay, bench node).
    """
    env = local_ros_environment(domain_id)
    os.environ.update(env)
    return env


class NodeProcess:
    """``segment_node`` in its own process, its output captured."""

    def __init__(
        self,
        engine_dir: Path | str,
        env: dict[str, str] | None = None,
        remaps: dict[str, str] | None = None,
        log: str | Path | None = None,
        **params: object,
    ) -> None:
        """``log``: a file for the child's output instead of a pipe, for runs long enough to fill one."""
        args = [sys.executable, "-m", "binseg_ros.ros.segment_node", "--ros-args", "-p", f"engine_dir:={engine_dir}"]
        for name, value in params.items():
            args += ["-p", f"{name}:={str(value).lower() if isinstance(value, bool) else value}"]
        for source, target in (remaps or {}).items():
            args += ["-r", f"{source}:={target}"]
        self._log = Path(log) if log is not None else None
        with open(log, "w") if log is not None else nullcontext(subprocess.PIPE) as stdout:
            self.process = subprocess.Popen(
                args, stdout=stdout, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
            )
        self.output = ""

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT, then wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the child to exit (killing it after ``timeout``); returns the exit code, keeps its output."""
        note = ""
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
            note = f"\n[killed after {timeout:.0f} s without exiting]"
        self.output = (self._log.read_text() if self._log is not None else out) + note
        return self.process.returncode
