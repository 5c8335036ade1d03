"""README command #1: `binseg demo` end to end (real node process, real rclpy, shipped sample)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import cv2
from rosgraph import ros_environment


def test_demo_plays_the_sample_and_shows_the_fallback(fast_engine, tmp_path):
    env = {**os.environ, **ros_environment()}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "binseg_ros.cli",
            "demo",
            "--engine-dir",
            str(fast_engine.root),
            "--out",
            str(tmp_path),
            "--passes",
            "4",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    phase1, phase2 = out.split("phase 2: thermal cut off:")
    assert re.search(r"frames in \(RGB sets published\): 16", phase1)
    masks = [int(m) for m in re.findall(r"masks out:\s+(\d+)", out)]
    assert len(masks) == 2 and all(m >= 12 for m in masks), out
    assert "rgb+depth+thermal" in phase1.split("modalities used")[1].splitlines()[0]
    assert "rgb+depth (" in phase2, out  # the fallback subset shows up in the diagnostics
    written = sorted((tmp_path / "phase1").glob("*.png"))
    assert len(written) == masks[0]
    mask = cv2.imread(str(written[0]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (480, 640) and set(mask.ravel().tolist()) <= {0, 255}
