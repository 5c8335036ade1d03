"""Evaluation report: ``report.md``, ``metrics.json`` and the plots a person looks at first.

With degradation windows in the bag, a table scores each window against the clean masks.

Plots: precision-recall and F-measure-vs-threshold (overall and per active subset),
per-frame IoU over time with the fallback windows shaded, a latency histogram per stage,
and a grid of overlays of the best, median and worst frames (ground truth outlined).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import matplotlib

matplotlib.use("Agg")  # files only: runs headless on robots and in CI
import matplotlib.pyplot as plt
import numpy as np

from binseg_ros.bags.evaluate import STAGES, BagEvaluation, FrameRecord
from binseg_ros.metrics import METRICS, mean_curves
from binseg_ros.modalities import all_subsets, subset_name

FULL = subset_name(all_subsets()[0])


def metrics_json(evaluation: BagEvaluation) -> dict[str, Any]:
    """Everything the report states, machine-readable."""
    return {
        "bag": str(evaluation.bag),
        "backend": evaluation.backend,
        "input_size": list(evaluation.input_size),
        "ground_truth": evaluation.ground_truth,
        "bag_duration_s": evaluation.duration_s,
        "wall_s": evaluation.wall_s,
        "masks_per_s": evaluation.masks / evaluation.wall_s if evaluation.wall_s else 0.0,
        "scoring_s": evaluation.scoring_s,
        "accounting": {
            "frames_in": evaluation.frames_in,
            "frames_in_sets": evaluation.frames_in_sets,
            "sets": evaluation.sets,
            "masks": evaluation.masks,
            "scored": len(evaluation.scored),
            "drops": evaluation.drops,
            "degraded_frames": evaluation.degraded_frames,
            "mask_skips": evaluation.mask_skips,
            "balanced": evaluation.accounting_balanced,
        },
        "overall": evaluation.overall(),
        "per_subset": evaluation.per_subset(),
        "per_window": evaluation.per_window(),
        "latency_ms": evaluation.latency_ms(),
        "frames": [
            {
                "stamp_ns": r.stamp,
                "time_s": r.time_s,
                "subset": subset_name(r.subset),
                "windows": list(r.windows),
                "timings_ms": {k: v * 1e3 for k, v in r.timings.items()},
                "scores": r.score.scalars if r.score else None,
            }
            for r in evaluation.records
        ],
    }


def _fallback_windows(records: list[FrameRecord]) -> list[tuple[float, float, str]]:
    """Runs of consecutive masks made without every modality: (start s, end s, subset)."""
    windows: list[tuple[float, float, str]] = []
    for record in records:
        name = subset_name(record.subset)
        if name == FULL:
            continue
        if windows and windows[-1][2] == name and record.time_s - windows[-1][1] < 1.0:
            windows[-1] = (windows[-1][0], record.time_s, name)
        else:
            windows.append((record.time_s, record.time_s, name))
    return windows


def _plot_curves(evaluation: BagEvaluation, path: Path) -> None:
    groups = {"all frames": evaluation.scored}
    for name in evaluation.per_subset():
        groups[name] = [r for r in evaluation.scored if subset_name(r.subset) == name]
    fig, (pr, fm) = plt.subplots(1, 2, figsize=(11, 4.5))
    thresholds = np.arange(255, -1, -1) / 255  # pysodmetrics' curves run from threshold 255 down to 0
    for label, records in groups.items():
        curves = mean_curves([r.score for r in records])  # type: ignore[misc]
        style = {"linewidth": 2.5, "color": "black"} if label == "all frames" else {"linewidth": 1.2}
        pr.plot(curves["recall"], curves["precision"], label=f"{label} ({len(records)})", **style)
        fm.plot(thresholds, curves["F"], label=label, **style)
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
    fm.set(xlabel="threshold", ylabel="F-measure (β²=0.3)", title="F-measure vs threshold", xlim=(0, 1), ylim=(0, 1.02))
    pr.legend(fontsize=8, loc="lower left")
    for axis in (pr, fm):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_timeline(evaluation: BagEvaluation, path: Path) -> None:
    fig, axis = plt.subplots(figsize=(11, 3.5))
    colors = plt.get_cmap("tab10")
    order = [subset_name(s) for s in all_subsets()]
    for start, end, name in _fallback_windows(evaluation.records):
        axis.axvspan(
            start,
            end + 1e-3,
            color=colors(order.index(name)),
            alpha=0.18,
            label=f"fallback: {name}" if name not in axis.get_legend_handles_labels()[1] else None,
        )
    points = [(r.time_s, r.score.scalars["IoU"]) for r in evaluation.scored if r.score is not None]
    axis.plot(
        [time_s for time_s, _ in points],
        [iou for _, iou in points],
        ".-",
        color="black",
        markersize=4,
        linewidth=0.8,
        label="IoU per mask",
    )
    axis.set(xlabel="bag time (s)", ylabel="IoU @ 0.5", ylim=(-0.02, 1.02), title="Per-frame IoU over time")
    axis.grid(alpha=0.3)
    handles, labels = axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    axis.legend(unique.values(), unique.keys(), fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_latency(evaluation: BagEvaluation, path: Path) -> None:
    fig, axis = plt.subplots(figsize=(8, 4))
    for stage in STAGES:
        values = np.array([r.timings[stage] for r in evaluation.records]) * 1e3
        if len(values):
            axis.hist(
                values,
                bins=30,
                alpha=0.55 if stage != "total" else 0.9,
                label=stage,
                histtype="stepfilled" if stage != "total" else "step",
                linewidth=1.5,
            )
    axis.set(xlabel="milliseconds", ylabel="masks", title="Latency per stage (sync wait in bag time)")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _tile(record: FrameRecord) -> np.ndarray:
    tile = record.thumbnail.copy()  # type: ignore[union-attr]
    contours, _ = cv2.findContours(record.truth_thumbnail, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)  # type: ignore[arg-type]
    cv2.drawContours(tile, contours, -1, (0, 255, 0), 1)
    return tile


def _plot_overlays(evaluation: BagEvaluation, path: Path, per_row: int = 4) -> None:
    ranked = sorted(evaluation.scored, key=lambda r: r.score.scalars["IoU"])  # type: ignore[union-attr]
    middle = max(0, len(ranked) // 2 - per_row // 2)
    rows = {"best": ranked[::-1][:per_row], "median": ranked[middle : middle + per_row], "worst": ranked[:per_row]}
    fig, axes = plt.subplots(3, per_row, figsize=(3 * per_row, 7.2), squeeze=False)
    for row, (title, records) in enumerate(rows.items()):
        for col in range(per_row):
            axis = axes[row][col]
            axis.axis("off")
            if col < len(records):
                record = records[col]
                axis.imshow(_tile(record))
                axis.set_title(
                    f"{title}: IoU {record.score.scalars['IoU']:.2f}\n"  # type: ignore[union-attr]
                    f"{subset_name(record.subset)} @ {record.time_s:.2f}s",
                    fontsize=8,
                )
    fig.suptitle("Predicted mask (tint) and ground truth (green outline)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(rows: dict[str, dict[str, float]], first: str = "subset") -> str:
    """Markdown: one row per group, its frame count and METRICS (– for a group without frames)."""
    lines = [f"| {first} | frames | " + " | ".join(METRICS) + " |", "|---|---:|" + "---:|" * len(METRICS)]
    for name, row in rows.items():
        frames = int(row.get("frames", 0))
        lines.append(
            f"| {name} | {frames} | " + " | ".join(f"{row[m]:.3f}" if m in row else "–" for m in METRICS) + " |"
        )
    return "\n".join(lines)


def window_table(evaluation: BagEvaluation) -> str:
    """The degradation windows of the bag against its clean masks; "" for a bag without windows."""
    rows = evaluation.per_window()
    return _table(rows, "window") if rows else ""


PLOTS = {
    "curves.png": _plot_curves,
    "iou_timeline.png": _plot_timeline,
    "latency.png": _plot_latency,
    "overlays.png": _plot_overlays,
}


def write_report(evaluation: BagEvaluation, out: str | Path, title: str = "Bag evaluation") -> Path:
    """Write report.md, metrics.json and the PNG plots into ``out``; returns report.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = metrics_json(evaluation)
    (out / "metrics.json").write_text(json.dumps(data, indent=2))
    if evaluation.scored:
        for name, plot in PLOTS.items():
            plot(evaluation, out / name)
    for record in evaluation.records:
        if record.prediction is not None:
            (out / "predictions").mkdir(exist_ok=True)
            cv2.imwrite(str(out / "predictions" / f"{record.stamp}.png"), record.prediction)
    path = out / "report.md"
    path.write_text("\n".join(_markdown(evaluation, data, title)))
    return path


def _markdown(evaluation: BagEvaluation, data: dict[str, Any], title: str) -> list[str]:
    accounting = data["accounting"]
    segmenting = sum(r.timings["total"] - r.timings["sync_wait"] for r in evaluation.records)
    table = window_table(evaluation)
    windows = (
        ["## Degradation windows (masks made while a sensor was degraded; clean: none)", "", table, ""] if table else []
    )
    overall = (
        {"all frames": {**evaluation.overall(), "frames": float(len(evaluation.scored))}} if evaluation.scored else {}
    )
    lines = [
        f"# {title}",
        "",
        f"- Bag `{evaluation.bag}`: {evaluation.duration_s:.1f} s; ground truth from {evaluation.ground_truth}.",
        f"- Backend {evaluation.backend}, input {evaluation.input_size[0]}×{evaluation.input_size[1]}.",
        f"- Wall time {evaluation.wall_s:.1f} s: {data['masks_per_s']:.1f} masks/s; of it, segmentation "
        f"{segmenting:.1f} s (registration + preprocess + inference + postprocess), "
        f"scoring {evaluation.scoring_s:.1f} s, reading and decoding the bag "
        f"{evaluation.wall_s - segmenting - evaluation.scoring_s:.1f} s.",
        "",
        "## Accounting",
        "",
        f"- Image messages in: {accounting['frames_in']} → {accounting['frames_in_sets']} in "
        f"{accounting['sets']} sets; dropped: {accounting['drops'] or 'none'}.",
        "- In sets but left out of inference by the quality gate (`<modality>.<reason>`): "
        f"{accounting['degraded_frames'] or 'none'}.",
        f"- Masks {accounting['masks']}, scored {accounting['scored']}, "
        f"not scored: {accounting['mask_skips'] or 'none'}.",
        f"- Every message accounted for: **{'yes' if accounting['balanced'] else 'NO'}**.",
        "",
        "## Accuracy (pysodmetrics; per active subset = the robustness table of this bag)",
        "",
        _table({**overall, **evaluation.per_subset()}) if evaluation.scored else "no scored frames",
        "",
        *windows,
        "## Latency (ms)",
        "",
        "| stage | p50 | p95 | p99 |",
        "|---|---:|---:|---:|",
        *[
            f"| {stage} | {v['p50']:.2f} | {v['p95']:.2f} | {v['p99']:.2f} |"
            for stage, v in evaluation.latency_ms().items()
        ],
        "",
        "Sync wait is in bag time (how long the set waited for its last frame, including a",
        "fallback's timeout); the other stages are wall time on this machine.",
        "",
    ]
    if evaluation.scored:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in PLOTS] + [""]
    return lines
