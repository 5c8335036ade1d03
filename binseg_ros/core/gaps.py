"""Gaps in a sensor's stream, for the synchroniser: until when a modality's frame can join a set,
which sets it *missed*, the hysteresis that keeps one that keeps missing out of the sets, when
its clock went back (:class:`Rewind`), and the :class:`Channel` that holds them all for a modality.

A set can go out without a modality because its camera dropped frames (a gap), because its
frame came later than the anchor waits, or merely because it is slower than the anchor, so
that some anchors have no frame of it within slop. Only the first two are misses: a slower
camera is in the share of sets its rate allows, and benching it for the others would keep it
out for good, since it never gets enough matches in a row to rejoin. Telling a gap from a
slower camera near the window's edge takes the frame after the window: the verdict on a set
waits for it (the modality's next frame, or its going stale), which comes before that frame
can join any set, so benching is as timely as if it had been known at once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import islice, pairwise
from statistics import median
from typing import NamedTuple

from binseg_ros.core.frame import Frame

RECENT = 8  # frames whose delays and stamp intervals are its current ones: a gap or two among them is outvoted
HISTORY = 64  # frames kept for verdicts: more than a 30 Hz camera sends while a set waits (the node's max_delay <= 1 s)
SKIP = 1.5  # intervals between two frames beyond which at least one in between is missing


@dataclass(frozen=True)
class Misses:
    """Of the anchors finished while a modality was tracked (``expected``: its own, emitted,
    dropped, benched or not), how many it missed (a gap in its stream, or too late): the
    sensor's miss rate, not the hysteresis'."""

    missed: int = 0
    expected: int = 0


class RecentMisses:
    """Each modality's misses over the last ``window`` seconds, from the running totals
    (:class:`Misses`) sampled at every status: what diagnostics warn about while a sensor keeps
    missing sets. The synchroniser's bench is a poor witness of that on its own: between two
    relapses a flapping sensor is back in the sets, and a status taken at a fixed rate can fall
    at that moment every time (a 2 Hz flap beside a 1 Hz status)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._samples: deque[tuple[float, dict[str, Misses]]] = deque()

    def update(self, now: float, totals: dict[str, Misses]) -> tuple[dict[str, Misses], float]:
        """Record ``totals`` at ``now`` (seconds); the misses since the newest earlier sample at
        least ``window`` old (or the oldest, early on), and how many seconds that is."""
        self._samples.append((now, totals))
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()
        then, old = self._samples[0]
        recent = {m: Misses(t.missed - old[m].missed, t.expected - old[m].expected) for m, t in totals.items()}
        return recent, now - then


class _Seen(NamedTuple):
    """A frame as its cadence keeps it, ns."""

    stamp: int
    arrival: int
    interval: float | None  # median stamp interval of the RECENT frames up to this one (None: its first)


@dataclass
class Cadence:
    """A modality's last frames, oldest first, the sets that went out without it whose verdict
    waits for its next frame, as (its last frame stamped by the window's end, the window's end),
    and how many sets it missed."""

    seen: deque[_Seen] = field(default_factory=lambda: deque(maxlen=HISTORY))
    owed: list[tuple[_Seen, int]] = field(default_factory=list)
    missed: int = 0  # sets it missed, so far

    @property
    def last_stamp(self) -> int | None:
        """Its newest frame's stamp (ns); None before its first."""
        return self.seen[-1].stamp if self.seen else None

    @property
    def last_arrival(self) -> int | None:
        """When its newest frame came (ns, node clock); None before its first."""
        return self.seen[-1].arrival if self.seen else None

    @property
    def interval(self) -> float | None:
        """Its current frame interval (ns, the median of its recent stamp intervals); None before its second."""
        return self.seen[-1].interval if self.seen else None

    def add(self, stamp: int, arrival: int) -> int:
        """A frame came; returns how many owed sets it shows were missed."""
        stamps = [s.stamp for s in islice(self.seen, max(0, len(self.seen) - RECENT + 1), None)] + [stamp]
        intervals = [later - earlier for earlier, later in pairwise(stamps)]
        self.seen.append(_Seen(stamp, arrival, median(intervals) if intervals else None))
        return self._settle()

    def due(self, anchor: Frame, slop: int, max_delay: int) -> int:
        """Until when (arrival, ns) a frame of it can join ``anchor``'s set: when one stamped at
        the window's end would come with the longest transport delay of its recent frames plus
        their spread (so their jitter is in time), or the anchor's delay if longer, and at most
        ``max_delay`` after the anchor (just that before its first frame, its delay unknown)."""
        stamp, arrival = anchor.stamp_ns, anchor.arrival.clock_ns
        latest = arrival + max_delay
        if not self.seen:
            return latest
        delays = [s.arrival - s.stamp for s in islice(self.seen, max(0, len(self.seen) - RECENT), None)]
        delay = 2 * max(delays) - min(delays)
        return min(latest, stamp + slop + max(arrival - stamp, delay))

    def owe(self, window_end: int, due: int) -> int:
        """A set whose window ends at ``window_end`` went without it, none of its frames within the
        window having come before ``due``; returns how many owed sets are now known missed. The
        verdict starts from its last frame stamped by the window's end that came before ``due``
        (none: it had not started, nothing was due), so it does not depend on when it is asked."""
        before = [s for s in self.seen if s.stamp <= window_end and s.arrival < due]
        if before:
            self.owed.append((before[-1], window_end))
        return self._settle()

    def lapse(self) -> None:
        """It stopped (went stale): every owed set in whose window a frame of it was due was missed."""
        self.missed += sum(self._missed(last, end, None) for last, end in self.owed)
        self.owed.clear()

    def shift(self, jump: int) -> None:
        """The node's clock jumped by ``jump`` ns: its frames' arrivals move with it (verdicts go by stamps)."""
        self.seen = deque((s._replace(arrival=s.arrival + jump) for s in self.seen), maxlen=HISTORY)

    def restart(self) -> None:
        """Its clock went back: the old timeline stopped there, and delays and intervals measured
        on it mean nothing on the new one; it starts afresh, keeping the count of sets it missed."""
        self.lapse()
        self.seen.clear()

    def _settle(self) -> int:
        """Judge the owed sets whose following frame (the first stamped after their last) has come."""
        missed, waiting = 0, []
        for last, end in self.owed:
            following = next((s.stamp for s in self.seen if s.stamp > last.stamp), None)
            if following is None:
                waiting.append((last, end))
            else:
                missed += self._missed(last, end, following)
        self.owed = waiting
        self.missed += missed
        return missed

    @staticmethod
    def _missed(last: _Seen, window_end: int, following: int | None) -> bool:
        """Missed: its frame for the window came too late, or, after ``last``, the frame its
        cadence made due by the window's end is missing (``following`` more than ``SKIP``
        intervals on, or never: it stopped)."""
        if following is not None and following <= window_end:
            return True  # stamped by the window's end, but came after the anchor's due time
        if last.interval is None:
            return following is None  # no cadence to tell a skip by; one that stopped missed it
        skipped = following is None or following - last.stamp > SKIP * last.interval
        return skipped and last.stamp + last.interval <= window_end


@dataclass
class Bench:
    """A modality that missed a set is benched: still matched, but left out of the sets
    until matched in ``need`` consecutive ones, the last of which it rejoins. ``need`` is the
    readmission count, doubled instead on a relapse within ``need`` sets of rejoining, so a
    sensor that flaps faster than it earns its way back stays out (one engine, not a switch every
    few sets) and rejoins once it keeps up. ``need`` stays at most twice the longest run it
    reached (a relapse comes after a run of at least ``need``), which :meth:`clear` keeps true
    by forgetting both."""

    benched: bool = False
    need: int = 0  # consecutive matched sets it needs to rejoin (0: not benched since cleared)
    run: int = 0  # consecutive emitted sets it was matched for

    def miss(self, readmit_frames: int) -> None:
        """It missed a set (or several, judged at once)."""
        if not self.benched:
            relapse = self.need > 0 and self.run < 2 * self.need
            self.need = 2 * self.need if relapse else readmit_frames
            self.benched = True
        self.run = 0

    def matched(self) -> bool:
        """It was matched for a set: whether its frame joins it (it is not, or no longer, benched)."""
        self.run += 1
        self.benched = self.benched and self.run < self.need
        return not self.benched

    def clear(self) -> None:
        """Start afresh: it went stale and must be readmitted, or it anchors the sets (it cannot miss its own)."""
        self.benched, self.need, self.run = False, 0, 0


@dataclass
class Rewind:
    """A run of a modality's frames stamped at or before its last accepted stamp, each stamped
    after the one before: its clock went back (a driver restarted, a bag looped) or an outlier
    set its last stamp ahead. Those frames are refused as not increasing until the run is
    believed: it has two frames or more, and the next, at the run's latest interval, would come
    ``timeout`` or more after its first. So a modality whose clock jumped is used again within
    ``timeout`` of the jump, at the last frame before it would have waited that long, while an
    old frame resent, a duplicate, or a burst of resent frames (which arrive together) starts no
    run that lasts: a frame not stamped after the run's last starts a new one."""

    first_arrival: int = 0  # ns, node clock
    last_arrival: int = 0
    last_stamp: int = 0
    frames: int = 0  # 0: no run

    def back(self, stamp: int, arrival: int, timeout: int) -> bool:
        """A frame stamped at or before the last accepted one came; whether its run shows a jump."""
        extends = self.frames > 0 and stamp > self.last_stamp
        next_arrival = 2 * arrival - self.last_arrival  # the frame after it, at its interval
        if not extends:
            self.first_arrival, self.frames = arrival, 0
        self.frames += 1
        self.last_stamp, self.last_arrival = stamp, arrival
        return extends and next_arrival - self.first_arrival >= timeout

    def clear(self) -> None:
        """A frame stamped after the last accepted one: the stream goes on, no run."""
        self.frames = 0


class Held(NamedTuple):
    """A buffered frame and, should it anchor a set, each other modality's due time (ns, node clock)."""

    frame: Frame
    due: dict[str, int]


@dataclass
class Channel:
    """A modality's state in the synchroniser: its buffer of frames, its health and its stream."""

    buffer: deque[Held] = field(default_factory=deque)
    last_resolution: tuple[int, int] | None = None
    admitted: bool = False
    streak: int = 0  # consecutive frames while not admitted
    cadence: Cadence = field(default_factory=Cadence)
    bench: Bench = field(default_factory=Bench)
    expected: int = 0  # with cadence.missed, its Misses
    rewind: Rewind = field(default_factory=Rewind)

    @property
    def newest_stamp(self) -> int:
        """The stamp of the last frame it sent (0 before any): its run's while its clock may have
        gone back, so an anchor on the new timeline waits for it as for any modality."""
        return self.rewind.last_stamp if self.rewind.frames else (self.cadence.last_stamp or 0)
