"""``binseg replay``: a real segment_node process fed a bag over Fast DDS gives the offline masks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rosgraph import ros_environment

from binseg_ros.bags.io import read_messages
from binseg_ros.bags.make import MakeBagConfig, make_bag
from binseg_ros.training.split import SPLITS, load_split


def test_replay_reproduces_the_offline_masks_frame_for_frame(fast_engine, mm5_root, tmp_path):
    ids = load_split(SPLITS / "mm5.yaml").held_out_ids()[:24]
    bag = tmp_path / "bag"
    make_bag(mm5_root, ids, bag, MakeBagConfig(size=(120, 160)), progress=False)
    out = tmp_path / "replay"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "binseg_ros.cli",
            "replay",
            "--bag",
            str(bag),
            "--engine-dir",
            str(fast_engine.root),
            "--out",
            str(out),
            "--rate",
            "0.5",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **ros_environment()},
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "replay.json").read_text())
    assert summary["offline_masks"] == len(ids)
    # Every mask the live node sent has the stamp of an offline one and the same pixels; at half
    # speed with a fast engine the live node keeps (almost) every set.
    assert summary["live_only"] == 0
    assert summary["identical"] == summary["common"] == summary["live_masks"] >= 0.9 * len(ids), summary
    recorded = list(read_messages(out / "recorded", ["/segment_node/mask"]))
    assert len(recorded) == summary["live_masks"]
    if summary["live_masks"] == summary["offline_masks"]:  # same frames, same probabilities over DDS
        for name, value in summary["offline_metrics"].items():
            assert summary["live_metrics"][name] == pytest.approx(value, abs=1e-9), name
    assert (out / "offline" / "report.md").is_file() and (out / "replay.md").is_file()
