"""``binseg bench soak``'s report: ``soak.md`` (goals, faults, minutes), two CSVs and a plot."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from binseg_ros.bench.soak import BASELINE_MINUTE, EpisodeResult, Fault, MinuteRow, Verdict, mapping_growth

PARTS = ("anon", "file", "shmem")  # of the RSS, as /proc reports them


def by_fault(results: Sequence[EpisodeResult]) -> dict[Fault, tuple[int, int, list[str]]]:
    """Per fault: occurrences, survived, and the names of the checks that failed (each once)."""
    table: dict[Fault, tuple[int, int, list[str]]] = {}
    for result in results:
        seen, ok, failed = table.get(result.fault, (0, 0, []))
        failed = failed + [name for name, passed in result.checks.items() if not passed and name not in failed]
        table[result.fault] = (seen + 1, ok + result.survived, failed)
    return table


def write_report(
    out: Path, header: str, rows: Sequence[MinuteRow], results: Sequence[EpisodeResult], verdict: Verdict
) -> Path:
    """``soak.md`` (goals, faults, minutes), ``soak_minutes.csv``, ``soak_episodes.csv`` and
    ``soak.png`` in ``out``; returns the markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    _write_minutes_csv(out / "soak_minutes.csv", rows)
    _write_episodes_csv(out / "soak_episodes.csv", results)
    _plot(out / "soak.png", rows)
    lines = [f"# Soak: {header}", "", "| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {goal} | {measured} | {'yes' if ok else '**no**'} |" for goal, measured, ok in verdict.lines()]
    lines += ["", "| fault | episodes | survived | failed checks | last detail |", "|---|---:|---:|---|---|"]
    last_detail = {r.fault: r.detail for r in results}
    for fault, (seen, ok, failed) in by_fault(results).items():
        lines.append(f"| {fault.value} | {seen} | {ok} | {', '.join(failed) or '-'} | {last_detail[fault]} |")
    lines += [
        "",
        "| minute | RSS MiB, each second: min / median / max | at the end: anon / file / shmem MiB "
        "| masks / anchors | p50 ms | p95 ms | drops this minute |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    previous: Mapping[str, int] = {}
    for row in rows:
        dropped = sum(v - previous.get(k, 0) for k, v in row.counters.items() if k.startswith("drops."))
        lines.append(
            f"| {row.minute + 1} | {' / '.join(f'{x:.1f}' for x in row.rss_range)} | {_parts(row)} "
            f"| {row.masks} / {row.anchors} "
            f"| {row.p50:.1f} | {row.p95:.1f} "
            f"| {dropped} |"
        )
        previous = row.counters
    grown = mapping_growth(rows)
    if grown:
        lines += [
            "",
            f"Where the anonymous memory grew, end of minute {BASELINE_MINUTE} to the end (largest first):",
            "",
            "| mapping | MiB then | MiB at the end |",
            "|---|---:|---:|",
            *(f"| `{name}` | {then:.1f} | {end:.1f} |" for name, then, end in grown),
        ]
    lines += ["", "![soak](soak.png)", ""]
    path = out / "soak.md"
    path.write_text("\n".join(lines))
    return path


def _parts(row: MinuteRow) -> str:
    return " / ".join(f"{row.rss_parts.get(part, math.nan):.1f}" for part in PARTS)


def _write_minutes_csv(path: Path, rows: Sequence[MinuteRow]) -> None:
    keys = sorted({k for row in rows for k in row.counters})
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        memory = ["rss_mib", *(f"rss_{part}_mib" for part in PARTS), "rss_min_mib", "rss_median_mib", "rss_max_mib"]
        header = ["minute", *memory, "masks_received", "anchors_sent", "p50_ms", "p95_ms"]
        writer.writerow([*header, *keys])
        for row in rows:
            counters = [row.counters.get(k, "") for k in keys]
            writer.writerow(
                [
                    row.minute + 1,
                    f"{row.rss_mib:.2f}",
                    *(f"{row.rss_parts.get(part, math.nan):.2f}" for part in PARTS),
                    *(f"{x:.2f}" for x in row.rss_range),
                    row.masks,
                    row.anchors,
                    f"{row.p50:.2f}",
                    f"{row.p95:.2f}",
                    *counters,
                ]
            )


def _write_episodes_csv(path: Path, results: Sequence[EpisodeResult]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["minute", "fault", "survived", "failed_checks", "detail"])
        for r in results:
            failed = ";".join(name for name, ok in r.checks.items() if not ok)
            writer.writerow([r.minute + 1, r.fault.value, r.survived, failed, r.detail])


def _plot(path: Path, rows: Sequence[MinuteRow]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [row.minute + 1 for row in rows]
    fig, (rss, latency, rate) = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    low, middle, high = zip(*(row.rss_range for row in rows), strict=True)
    rss.fill_between(minutes, low, high, alpha=0.25, label="RSS, each second: min to max")
    rss.plot(minutes, middle, marker="o", label="RSS median")
    for part in PARTS:
        rss.plot(minutes, [row.rss_parts.get(part, math.nan) for row in rows], marker=".", label=part)
    rss.set_ylabel("node memory (MiB)")
    rss.legend()
    latency.plot(minutes, [row.p50 for row in rows], marker="o", label="p50")
    latency.plot(minutes, [row.p95 for row in rows], marker="o", label="p95")
    latency.set_ylabel("latency (ms)")
    latency.legend()
    rate.plot(minutes, [row.masks / max(1, row.anchors) for row in rows], marker="o")
    rate.set_ylabel("masks / anchors")
    rate.set_xlabel("minute")
    for axis in (rss, latency, rate):
        axis.grid(alpha=0.3)
    fig.suptitle("segment_node soak: each minute the same cycle of faults")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
