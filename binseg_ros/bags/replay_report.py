"""Replay summary: ``replay.json`` and ``replay.md`` for ``binseg replay``.

ROS-free on purpose, like :mod:`binseg_ros.bags.report` (the offline report, written next
to it under ``offline/``): the numbers arrive as a plain :class:`ReplaySummary`, so the
summary can be written, read and tested without a ROS install.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from binseg_ros.metrics import FrameScore, summarize

TABLE_METRICS = ("IoU", "S", "maxF", "MAE")


@dataclass(frozen=True)
class ReplayComparison:
    """The live run against the offline evaluation of the same bag and backend."""

    live_masks: int
    offline_masks: int
    common: int  # stamps both produced
    identical: int  # of those, pixel-identical masks
    live_only: int
    offline_only: int  # sets the live run dropped (e.g. superseded under load)
    node_drops: dict[str, int]  # the live node's drop counters, from its last /diagnostics
    scores: list[FrameScore]  # live masks with ground truth
    latency_ms: dict[str, float]  # anchor published → mask received, wall clock: p50, p95, p99


@dataclass(frozen=True)
class ReplaySummary:
    """Everything ``replay.json`` states: the run, then the live/offline comparison."""

    bag: str
    recorded: str
    rate: float
    bag_duration_s: float
    wall_s: float
    played: dict[str, int]  # images published per modality
    comparison: ReplayComparison
    offline_metrics: dict[str, float]

    @property
    def live_metrics(self) -> dict[str, float]:
        """Live masks against ground truth; {} when none could be scored."""
        return summarize(self.comparison.scores) if self.comparison.scores else {}

    def to_json(self) -> dict[str, Any]:
        """``replay.json``, flat: the run, the comparison's counts, both runs' metrics."""
        run = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("comparison", "offline_metrics")}
        counts = {f.name: getattr(self.comparison, f.name) for f in fields(self.comparison) if f.name != "scores"}
        return {
            **run,
            "wall_over_duration": self.wall_s / self.bag_duration_s,
            **counts,
            "live_metrics": self.live_metrics,
            "offline_metrics": self.offline_metrics,
        }

    def markdown(self) -> str:
        """``replay.md``: the run in three lines, then the metrics table (the CLI prints what precedes it)."""
        c = self.comparison
        latency = ", ".join(f"{k} {v:.1f}" for k, v in c.latency_ms.items()) or "none"
        lines = [
            f"# Replay: {Path(self.bag).name}",
            "",
            f"- Played {sum(self.played.values())} images ({self.played}) at rate {self.rate:g} in "
            f"{self.wall_s:.1f} s wall for {self.bag_duration_s:.1f} s of bag.",
            f"- Masks: live {c.live_masks}, offline {c.offline_masks}; same stamp {c.common}, "
            f"pixel-identical {c.identical}; offline only (dropped live) {c.offline_only}; "
            f"live only {c.live_only}; the node's drop counters: {c.node_drops or 'none'}.",
            "- Anchor published → mask received (wall, ms): " + latency,
            "",
            "| run | " + " | ".join(TABLE_METRICS) + " |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, metrics in (("live", self.live_metrics), ("offline", self.offline_metrics)):
            if metrics:
                lines.append(
                    f"| {label} | {metrics['IoU']:.3f} | {metrics['S']:.3f} | {metrics['maxF']:.3f} | "
                    f"{metrics['MAE']:.4f} |"
                )
        lines += ["", "Offline report with plots: [offline/report.md](offline/report.md).", ""]
        return "\n".join(lines)


def write_replay_report(summary: ReplaySummary, out: str | Path) -> Path:
    """Write ``replay.json`` and ``replay.md`` into ``out``; returns replay.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_text(json.dumps(summary.to_json(), indent=2))
    path = out / "replay.md"
    path.write_text(summary.markdown())
    return path
