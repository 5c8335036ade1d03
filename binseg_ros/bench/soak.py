"""``binseg bench soak``, its ROS-free half: the fault schedule, the per-minute record and the verdicts.

A soak run plays three sensors at a steady rate for many minutes and, inside every minute, the
same cycle of faults (:data:`SCHEDULE`): bad stamps, malformed images, a dead and a flapping
sensor, a degraded one, a resolution change, a clock jump and live parameter changes. Every
minute thus carries the same load, so a minute late in the run compares with an early one:
memory that grows or latency that drifts shows as a trend, not as a different mix of faults.

The ROS half (:mod:`binseg_ros.ros.soak`) plays the schedule to a running ``segment_node`` and
collects observations and :class:`MinuteRow` s; :mod:`binseg_ros.bench.soak_judge` judges each
episode, this module the run against its goals (:class:`Verdict`), and
:mod:`binseg_ros.bench.soak_report` writes the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from binseg_ros.core.drops import DropReason, unaccounted

CYCLE_S = 60.0  # the schedule repeats every minute
BASELINE_MINUTE = 5  # growth and drift are measured from here: start-up, caches and allocator pools settle first
DRIFT_WINDOW = 5  # minutes pooled at each end for the latency drift


class Fault(str, Enum):
    """The faults a soak injects; each is survived when the node still runs, publishes masks for
    at least half the anchors of the clean gap after it, ends that gap on every sensor, and moved
    the counters the fault should move."""

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
    """One fault, from ``start_s`` to ``end_s`` seconds into each cycle; an instant one
    (``start_s == end_s``) is what the player sends at its start."""

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


SOAK_THRESHOLD = 0.6  # the live change; the node starts at DEFAULT_THRESHOLD and returns to it
MALFORMED = (
    DropReason.BAD_STEP,
    DropReason.BAD_DATA_LENGTH,
    DropReason.UNKNOWN_ENCODING,
    DropReason.ZERO_SIZE,
    DropReason.UNSUPPORTED_ENCODING,
)
"""The malformed thermal messages of a cycle, one of each kind (:mod:`binseg_ros.ros.malformed` builds them)."""
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
    rss_parts: dict[str, float] = field(default_factory=dict)  # anon, file, shmem (MiB): where rss_mib lives
    rss_samples: list[float] = field(default_factory=list, repr=False)  # RSS (MiB) at each second of the minute
    mappings: dict[str, float] = field(default_factory=dict, repr=False)  # anonymous mapping → resident MiB, at the end

    @property
    def rss_range(self) -> tuple[float, float, float]:
        """The minute's per-second RSS: min, median, max (MiB)."""
        if not self.rss_samples:
            return (math.nan,) * 3
        low, mid, high = np.percentile(self.rss_samples, [0, 50, 100])
        return float(low), float(mid), float(high)

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
        return self._unaccounted[0]

    @property
    def unaccounted_sets(self) -> int:
        """Sets that are neither a mask nor dropped with a reason."""
        return self._unaccounted[1]

    @property
    def _unaccounted(self) -> tuple[int, int]:
        frames_in = sum(self.frames_in.values())
        return unaccounted(frames_in, self.frames_in_sets, self.sets, self.masks_published, self.drops)

    @property
    def balanced(self) -> bool:
        return (
            self.lost_in_transport == 0
            and self.unaccounted_frames == 0
            and self.unaccounted_sets == 0
            and self.masks_received == self.masks_published
        )


def _pooled(
    rows: Sequence[MinuteRow], values: Callable[[MinuteRow], list[float]]
) -> tuple[list[float], list[float]] | None:
    """``values`` pooled over the :data:`DRIFT_WINDOW` minutes after the baseline minute and over
    the last :data:`DRIFT_WINDOW` minutes: the two windows growth and drift compare; None when the
    run is too short for both."""
    if len(rows) < BASELINE_MINUTE + 2 * DRIFT_WINDOW:
        return None
    early = [x for row in rows[BASELINE_MINUTE : BASELINE_MINUTE + DRIFT_WINDOW] for x in values(row)]
    return early, [x for row in rows[-DRIFT_WINDOW:] for x in values(row)]


def _ends(rows: Sequence[MinuteRow]) -> tuple[MinuteRow, MinuteRow] | None:
    """The baseline minute's row and the last one; None when the run is no longer than the baseline."""
    return (rows[BASELINE_MINUTE - 1], rows[-1]) if len(rows) > BASELINE_MINUTE else None


def growth(rows: Sequence[MinuteRow]) -> float:
    """RSS growth: the median of the per-second samples of the last :data:`DRIFT_WINDOW` minutes
    against that of the :data:`DRIFT_WINDOW` minutes after the baseline minute (the windows of
    :func:`drift`); NaN when the run is too short for two windows.

    Medians over windows, not one sample at each end: as the faults come and go, the frames the
    node holds (sync buffers, DDS queues, the set in flight) move its RSS by several MiB within a
    minute, more than the 1 % the goal must resolve. A leak moves the median; buffers filling and
    draining do not.
    """
    windows = _pooled(rows, lambda row: row.rss_samples)
    if windows is None:
        return math.nan
    early, late = windows
    return float(np.median(late) / np.median(early) - 1.0)


def mapping_growth(rows: Sequence[MinuteRow], top: int = 5) -> list[tuple[str, float, float]]:
    """Where the anonymous memory grew from the end of the baseline minute to the end: the
    ``top`` mappings by growth, as (mapping, MiB then, MiB at the end); empty when the run is no
    longer than the baseline minute. A mapping that appeared since counts from 0."""
    ends = _ends(rows)
    if ends is None:
        return []
    then, end = ends[0].mappings, ends[1].mappings
    grown = sorted(end, key=lambda name: then.get(name, 0.0) - end[name])[:top]
    return [(name, then.get(name, 0.0), end[name]) for name in grown if end[name] > then.get(name, 0.0)]


def point_growth(rows: Sequence[MinuteRow]) -> float:
    """RSS at the end of the run against the end of the baseline minute, one sample each: shown
    beside :func:`growth` to say how much a single sample moves; NaN when the run is no longer."""
    ends = _ends(rows)
    return math.nan if ends is None else ends[1].rss_mib / ends[0].rss_mib - 1.0


def drift(rows: Sequence[MinuteRow]) -> float:
    """p95 of the last :data:`DRIFT_WINDOW` minutes against the p95 of the :data:`DRIFT_WINDOW`
    minutes after the baseline minute, each pooled over its minutes; NaN when the run is too short
    for two windows, inf when a window has no latency at all (no mask came: not a drift to pass)."""
    windows = _pooled(rows, lambda row: row.latencies_ms)
    if windows is None:
        return math.nan
    early, late = windows
    if not early or not late:
        return math.inf
    return float(np.percentile(late, 95) / np.percentile(early, 95) - 1.0)


def _measured(value: float, digits: int) -> str:
    return "n/a (run too short)" if math.isnan(value) else f"{value:+.{digits}%}"


@dataclass(frozen=True)
class Verdict:
    """The soak's goals against a run's numbers."""

    rss_growth: float
    rss_point_growth: float
    p95_drift: float
    episodes: int
    survived: int
    accounting: Accounting
    node_exit: int | None  # the node's exit code after the final SIGINT

    max_growth: float = 0.01
    max_drift: float = 0.10

    def lines(self) -> list[tuple[str, str, bool]]:
        """(goal, measured, met) rows."""
        a = self.accounting
        early = f"{BASELINE_MINUTE + 1}-{BASELINE_MINUTE + DRIFT_WINDOW}"
        return [
            (
                f"RSS growth from minute {BASELINE_MINUTE} to the end < {self.max_growth:.0%} "
                f"(median of the last {DRIFT_WINDOW} minutes against minutes {early}, sampled every second)",
                f"{_measured(self.rss_growth, 2)} (one sample at each end: {_measured(self.rss_point_growth, 2)})",
                math.isnan(self.rss_growth) or self.rss_growth < self.max_growth,
            ),
            (
                f"p95 of the last {DRIFT_WINDOW} minutes < {1 + self.max_drift:.2f} x that of minutes {early}",
                _measured(self.p95_drift, 1),
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
