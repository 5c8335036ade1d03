"""``binseg demo``: the node on the CPU against shipped MM5 frames, then with thermal cut off.

A real ``segment_node`` process, real rclpy publishers and subscribers over Fast DDS on this
host. Phase 1 plays all three cameras; phase 2 the same frames without thermal, to show the
node falling back to rgb+depth. Masks are written as PNGs and a summary is printed.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from binseg_ros.datasets import SAMPLE, camera_frames, list_ids, load_frame
from binseg_ros.engines.locate import open_engine_folder
from binseg_ros.errors import NodeError
from binseg_ros.modalities import MODALITIES

if TYPE_CHECKING:  # the player imports rclpy, which run_demo imports only when it runs
    from binseg_ros.ros.player import FramePlayer


@dataclass(frozen=True)
class PhaseReport:
    """One phase as the demo prints it."""

    name: str
    frames_in: int
    masks_out: int
    latency_p50_ms: float
    latency_p95_ms: float
    subsets: dict[str, int]
    mean_iou: float

    def lines(self) -> list[str]:
        """The phase's block of the printed summary (the README and test_demo read these labels)."""
        used = ", ".join(f"{subset} ({count} reports)" for subset, count in self.subsets.items()) or "none"
        return [
            f"{self.name}:",
            f"  frames in (RGB sets published): {self.frames_in}",
            f"  masks out:                      {self.masks_out}",
            f"  latency input->mask p50 / p95:  {self.latency_p50_ms:.1f} / {self.latency_p95_ms:.1f} ms",
            f"  modalities used (diagnostics):  {used}",
            f"  mean IoU vs sample labels:      {self.mean_iou:.3f}",
        ]


def _iou(mask: np.ndarray, label: np.ndarray) -> float:
    """IoU of a published 0/255 mask against a sample label (empty against empty counts as 1)."""
    predicted, truth = mask > 127, label > 0
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else 1.0


def run_demo(engine_dir: Path | None, out: Path, rate: float, passes: int) -> int:
    """``binseg demo``: returns 0 when the node exited cleanly and sent masks in both phases, else 1.

    A node that does not come up raises :class:`NodeError` with the node's own output,
    which is where the reason (a bad engine folder, a missing library) is.
    """
    import rclpy

    from binseg_ros.ros.player import FramePlayer
    from binseg_ros.ros.process import NodeProcess, use_local_ros_environment

    manifest = open_engine_folder(engine_dir)
    folder = manifest.root
    dataset = [load_frame(SAMPLE, frame_id) for frame_id in list_ids(SAMPLE)]
    frames = [camera_frames(frame) for frame in dataset]
    labels = [frame["label"] for frame in dataset]
    env = use_local_ros_environment()  # before rclpy.init(): the player must find the node on this host
    print(f"model {manifest.model} ({manifest.version}), engines {folder}, {len(frames)} sample frames, {rate:g} Hz")
    node = NodeProcess(folder, env, backend="onnxruntime", diagnostics_period=0.25)
    rclpy.init()
    player = FramePlayer()
    reports: list[PhaseReport] = []
    failure: NodeError | None = None
    try:
        player.wait_for_target()
        reports = _play_phases(player, frames, labels, out, rate, passes)
    except NodeError as exc:
        failure = exc
    finally:
        player.destroy_node()
        rclpy.try_shutdown()
        code = node.stop()  # exactly once: its output is read when it exits
    if failure is not None:
        raise NodeError(f"{failure}; node output:\n{node.output}") from failure
    for report in reports:
        print("\n".join(report.lines()))
    print(f"masks written to {out}/phase*/; node exited with code {code}")
    return 0 if code == 0 and all(r.masks_out for r in reports) else 1


def _play_phases(
    player: FramePlayer,
    frames: list[dict[str, np.ndarray]],
    labels: list[np.ndarray],
    out: Path,
    rate: float,
    passes: int,
) -> list[PhaseReport]:
    """Phase 1 with every camera, phase 2 with thermal cut off; one report each, masks under ``out/phaseN``."""
    reports = []
    phases = [("phase 1: rgb + depth + thermal", MODALITIES), ("phase 2: thermal cut off", ("rgb", "depth"))]
    for number, (name, modalities) in enumerate(phases, start=1):
        player.masks.clear()
        mark = len(player.diagnostics)
        sent = player.play(frames, passes * len(frames), rate, modalities, tag=f"p{number}")
        player.spin_for(0.3)  # shorter than modality_timeout: phase 2 starts with the sensors alive
        reports.append(_report(name, player, sent, mark, labels, out / f"phase{number}"))
    return reports


def _report(
    name: str, player: FramePlayer, sent: dict[tuple[int, int], float], mark: int, labels: list[np.ndarray], out: Path
) -> PhaseReport:
    """One phase's numbers from what ``player`` received since ``mark``; writes each matched mask as a PNG.

    Masks are matched to the sets sent by exact RGB stamp (the node stamps a mask with its
    RGB image's header), so a mask's index gives its label and its latency.
    """
    out.mkdir(parents=True, exist_ok=True)
    order = {stamp: index for index, stamp in enumerate(sent)}
    latencies, ious = [], []
    for mask in player.masks:
        if mask.stamp not in order:
            continue
        index = order[mask.stamp]
        latencies.append((mask.received - sent[mask.stamp]) * 1e3)
        ious.append(_iou(mask.data, labels[index % len(labels)]))
        cv2.imwrite(str(out / f"{index:03d}.png"), mask.data)
    subsets = Counter(str(s["last_mask_subset"]) for s in player.statuses("segmentation", mark))
    subsets.pop("none", None)
    quantiles = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else [float("nan")] * 19
    return PhaseReport(
        name,
        len(sent),
        len(latencies),
        statistics.median(latencies) if latencies else float("nan"),
        quantiles[18],
        dict(subsets),
        float(np.mean(ious)) if ious else float("nan"),
    )
