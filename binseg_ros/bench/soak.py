"""``binseg bench soak``, its ROS-free half: the fault schedule, the per-minute record and the verdicts.

A soak run plays three sensors at a steady rate for many minutes and, inside every minute, the
same cycle of faults (:data:`SCHEDULE`): bad stamps, malformed images, a dead and a flapping
sensor, a degraded one, a resolution change, a clock jump and live parameter changes. Every
minute thus carries the same load, so a minute late in the run compares with an early one:
memory that grows or latency that drifts shows as a trend, not as a different mix of faults.

The ROS half (:mod:`binseg_ros.ros.soak`) plays the schedule to a running ``segment_node`` and
fills :class:`MinuteRow` and :class:`EpisodeResult`; this module judges them and writes the
report (markdown, CSV and a plot).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from binseg_ros.core.drops import Scope, total

CYCLE_S = 60.0  # the schedule repeats every minute
BASELINE_MINUTE = 5  # growth and drift are measured from here: start-up, caches and allocator pools settle first
DRIFT_WINDOW = 5  # minutes pooled at each end for the latency drift


class Fault(str, Enum):
    """The faults a soak injects; each is survived when the node keeps publishing through it and
    runs every sensor again in the clean gap after it, with the counters it should move moved."""

    BAD_STAMPS = "bad_stamps"  # one RGB image of each bad stamp kind, beside the good ones
    MALFORMED = "malformed"  # one thermal message of each malformed kind
    DEAD = "dead"  # thermal silent
    FLAPPING = "flapping"  # thermal on and off at 2 Hz
    DEGRADED = "degraded"  # RGB black: the quality gate leaves it out
    RESOLUTION = "resolution"  # RGB at half its size
    CLOCK_JUMP = "clock_jump"  # every sensor's stamps go back (a bag loop, a driver restart)
    PARAMETERS = "parameters"  # a live threshold change, a refused NaN, the threshold back


@dataclass(frozen=True)
class Episode:
    """One fault, from ``start_s`` to ``end_s`` seconds into each cycle; an instant one lasts one tick."""

    fault: Fault
    start_s: float
    end_s: float

    def covers(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


SCHEDULE: tuple[Episode, ...] = (
    Episode(Fault.BAD_STAMPS, 5.0, 5.0),
    Episode(Fault.MALFORMED, 8.0, 8.0),
    Episode(Fault.DEAD, 12.0, 17.0),
    Episode(Fault.FLAPPING, 22.0, 32.0),
    Episode(Fault.DEGRADED, 36.0, 41.0),
    Episode(Fault.RESOLUTION, 44.0, 46.0),
    Episode(Fault.CLOCK_JUMP, 49.0, 49.0),
    Episode(Fault.PARAMETERS, 52.0, 55.0),
)
"""One minute of faults, each followed by a clean gap of at least 3 s (until the next one starts)
in which the node must be back on every sensor. The clock jump holds until the cycle ends."""


def episode(fault: Fault) -> Episode:
    """The schedule's (one) episode of ``fault``."""
    return next(e for e in SCHEDULE if e.fault is fault)


FLAP_PERIOD_S = 0.5  # thermal on for half of it, off for the other half: 2 Hz
CLOCK_JUMP_S = 20.0  # how far every stamp goes back at the clock jump


def gap_end(episode: Episode) -> float:
    """Where the clean gap after ``episode`` ends: the next episode's start, or the cycle's end."""
    later = [e.start_s for e in SCHEDULE if e.start_s > episode.end_s]
    return min(later, default=CYCLE_S)


@dataclass
class EpisodeResult:
    """What one occurrence of an episode did: the checks its fault must pass, each named."""

    minute: int
    fault: Fault
    checks: dict[str, bool]
    detail: str = ""

    @property
    def survived(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


@dataclass
class MinuteRow:
    """One minute of the run, as sampled at its end."""

    minute: int
    rss_mib: float
    latencies_ms: list[float] = field(repr=False)  # mask received - RGB published, player side
    masks: int  # received by the player in this minute
    anchors: int  # RGB images published in this minute
    counters: dict[str, int]  # the node's counters at the minute's end (its last diagnostics)

    @property
    def p50(self) -> float:
        return float(np.percentile(self.latencies_ms, 50)) if self.latencies_ms else math.nan

    @property
    def p95(self) -> float:
        return float(np.percentile(self.latencies_ms, 95)) if self.latencies_ms else math.nan


@dataclass(frozen=True)
class Accounting:
    """Every message, at the end of a run after the node has gone quiet.

    ``sent`` the player's per-topic publishes; the node's counters say what became of them."""

    sent: dict[str, int]
    frames_in: dict[str, int]
    frames_in_sets: int
    sets: int
    masks_published: int
    masks_received: int
    drops: dict[str, int]

    @property
    def lost_in_transport(self) -> int:
        """Published by the player, never seen by the node."""
        return sum(self.sent.values()) - sum(self.frames_in.values())

    def lost_by_topic(self) -> str:
        """`` (thermal 1)``: where transport lost any, else empty."""
        lost = {m: n - self.frames_in.get(m, 0) for m, n in self.sent.items() if n != self.frames_in.get(m, 0)}
        return f" ({', '.join(f'{m} {n}' for m, n in lost.items())})" if lost else ""

    @property
    def unaccounted_frames(self) -> int:
        """Seen by the node, neither in a set nor dropped with a reason."""
        return sum(self.frames_in.values()) - self.frames_in_sets - total(self.drops, Scope.FRAME)

    @property
    def unaccounted_sets(self) -> int:
        """Sets that are neither a mask nor dropped with a reason."""
        return self.sets - self.masks_published - total(self.drops, Scope.SET)

    @property
    def balanced(self) -> bool:
        return (
            self.lost_in_transport == 0
            and self.unaccounted_frames == 0
            and self.unaccounted_sets == 0
            and self.masks_received == self.masks_published
        )


def growth(rows: Sequence[MinuteRow]) -> float:
    """RSS growth from the end of the baseline minute (or the first, in a shorter run) to the end."""
    start = rows[min(BASELINE_MINUTE, len(rows) - 1)]
    return rows[-1].rss_mib / start.rss_mib - 1.0


def drift(rows: Sequence[MinuteRow]) -> float:
    """p95 of the last :data:`DRIFT_WINDOW` minutes against the p95 of the same number from the
    baseline minute on, each pooled over its minutes; NaN when the run is too short for two windows."""
    if len(rows) < BASELINE_MINUTE + 2 * DRIFT_WINDOW:
        return math.nan
    early = [x for row in rows[BASELINE_MINUTE : BASELINE_MINUTE + DRIFT_WINDOW] for x in row.latencies_ms]
    late = [x for row in rows[-DRIFT_WINDOW:] for x in row.latencies_ms]
    return float(np.percentile(late, 95) / np.percentile(early, 95) - 1.0)


@dataclass(frozen=True)
class Verdict:
    """The soak's goals against a run's numbers."""

    rss_growth: float
    p95_drift: float
    episodes: int
    survived: int
    accounting: Accounting
    node_exit: int | None  # the node's exit code after the final SIGINT

    max_growth: float = 0.01
    max_drift: float = 0.10

    def lines(self) -> list[tuple[str, str, bool]]:
        """(goal, measured, met) rows."""
        drift_text = "n/a (run too short)" if math.isnan(self.p95_drift) else f"{self.p95_drift:+.1%}"
        a = self.accounting
        return [
            (
                f"RSS growth from minute {BASELINE_MINUTE} < {self.max_growth:.0%}",
                f"{self.rss_growth:+.2%}",
                self.rss_growth < self.max_growth,
            ),
            (
                f"p95 drift < {self.max_drift:.0%}",
                drift_text,
                math.isnan(self.p95_drift) or self.p95_drift < self.max_drift,
            ),
            (
                "every injected fault survived",
                f"{self.survived} of {self.episodes}",
                self.episodes > 0 and self.survived == self.episodes,
            ),
            (
                "every message accounted for",
                f"{sum(a.sent.values())} images sent, {a.lost_in_transport} lost in transport{a.lost_by_topic()}, "
                f"{a.unaccounted_frames} frames and {a.unaccounted_sets} sets unaccounted, "
                f"masks {a.masks_received} received of {a.masks_published} published",
                a.balanced,
            ),
            ("clean exit on SIGINT", f"exit {self.node_exit}", self.node_exit == 0),
        ]

    @property
    def met(self) -> bool:
        return all(ok for _, _, ok in self.lines())


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
        "| minute | RSS MiB | masks / anchors | p50 ms | p95 ms | drops this minute |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    previous: Mapping[str, int] = {}
    for row in rows:
        dropped = sum(v - previous.get(k, 0) for k, v in row.counters.items() if k.startswith("drops."))
        lines.append(
            f"| {row.minute + 1} | {row.rss_mib:.1f} | {row.masks} / {row.anchors} | {row.p50:.1f} | {row.p95:.1f} "
            f"| {dropped} |"
        )
        previous = row.counters
    lines += ["", "![soak](soak.png)", ""]
    path = out / "soak.md"
    path.write_text("\n".join(lines))
    return path


def _write_minutes_csv(path: Path, rows: Sequence[MinuteRow]) -> None:
    keys = sorted({k for row in rows for k in row.counters})
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["minute", "rss_mib", "masks", "anchors", "p50_ms", "p95_ms", *keys])
        for row in rows:
            counters = [row.counters.get(k, "") for k in keys]
            writer.writerow(
                [
                    row.minute + 1,
                    f"{row.rss_mib:.2f}",
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
    rss.plot(minutes, [row.rss_mib for row in rows], marker="o")
    rss.set_ylabel("node RSS (MiB)")
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
