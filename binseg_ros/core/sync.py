"""Approximate-time synchroniser with per-modality health and missing-sensor fallback.

ROS-free: stamps and arrivals are integer nanoseconds (:mod:`binseg_ros.core.frame`). The
adapters (node, bag evaluator) push frames as they arrive and call
:meth:`Synchronizer.poll` on a timer; emitted :class:`FrameSet` s go to whatever runs
inference.

Semantics (``shared/DESIGN.md`` §3):

- A modality is *alive* while its last accepted frame arrived less than ``modality_timeout``
  ago. A modality that was stale is *admitted* again only after ``readmit_frames``
  consecutive frames, each within ``modality_timeout`` of the previous (hysteresis), so a
  flapping sensor does not thrash engines. The *active* subset is the admitted, alive ones.
- The anchor modality is the first active one in ``rgb, depth, thermal`` order. (DESIGN says
  "the newest alive modality" when RGB is gone; a fixed priority is deterministic, which
  the replay evaluation relies on to reproduce the node's output frame for frame.)
- At start-up a modality not yet heard from is *expected* for ``modality_timeout`` after the
  first frame of any modality, so the first sets wait for all sensors instead of starting
  on whichever camera published first.
- An anchor frame is emitted with, for each other active modality, the buffered frame whose
  stamp is closest to it within ``slop``. Matched frames are consumed, so no frame is used
  twice; frames older than a match can never match later and are dropped.
- If another active modality has no frame within ``slop`` yet, but could still deliver one
  (its newest stamp is below ``anchor + slop``), the anchor waits. If it can no longer
  deliver one, the anchor is dropped. If that modality dies, waiting anchors are emitted
  with the reduced subset: output continues within about ``modality_timeout``.

Every frame that is not part of an emitted set is counted once, under a reason.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from binseg_ros.core.drops import DropReason
from binseg_ros.core.frame import Frame, FrameSet, seconds_to_ns
from binseg_ros.errors import ConfigError
from binseg_ros.modalities import MODALITIES, NO_SUBSET, Subset, canonical


@dataclass(frozen=True)
class SyncConfig:
    """The synchroniser's settings, in seconds as users give them; checked once, here."""

    slop: float = 0.05
    modality_timeout: float = 0.5
    readmit_frames: int = 3
    buffer_size: int = 10
    required: Subset = NO_SUBSET

    def __post_init__(self) -> None:
        if not self.slop > 0:
            raise ConfigError(f"slop must be > 0 s, got {self.slop}")
        if not self.modality_timeout > 0:
            raise ConfigError(f"modality_timeout must be > 0 s, got {self.modality_timeout}")
        if self.readmit_frames < 1:
            raise ConfigError(f"readmit_frames must be >= 1, got {self.readmit_frames}")
        if self.buffer_size < 1:
            raise ConfigError(f"buffer_size must be >= 1, got {self.buffer_size}")

    @property
    def slop_ns(self) -> int:
        return seconds_to_ns(self.slop)

    @property
    def timeout_ns(self) -> int:
        return seconds_to_ns(self.modality_timeout)


class Health(str, Enum):
    OK = "OK"
    STALE = "STALE"
    RECOVERING = "RECOVERING"  # frames arriving again, not yet admitted


@dataclass
class _Channel:
    """Per-modality state: the ring buffer and the health bookkeeping."""

    buffer: deque[Frame] = field(default_factory=deque)
    last_stamp: int | None = None  # ns
    last_arrival: int | None = None  # ns, node clock
    last_resolution: tuple[int, int] | None = None
    admitted: bool = False
    streak: int = 0  # consecutive frames while not admitted


class Synchronizer:
    """Thread-safe: ``push`` from subscription callbacks, ``poll`` from a timer."""

    def __init__(
        self,
        config: SyncConfig,
        emit: Callable[[FrameSet], None],
        resolutions: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        """``resolutions``: the (height, width) each modality's camera publishes, when a rig
        calibration says so (its images are registered after sync); without it, every frame
        must have the size of the highest-priority alive modality (inputs already registered)."""
        self.config = config
        self._resolutions = dict(resolutions) if resolutions is not None else None
        self.mismatched: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}  # modality → (expected, got), last
        self._emit = emit
        self._lock = threading.Lock()
        self._channels = {m: _Channel() for m in MODALITIES}
        self.drops: Counter[str] = Counter()
        self.emitted = 0
        self.frames_emitted = 0  # frames inside emitted sets: with drops, accounts for every frame
        self._started: int | None = None  # arrival (ns) of the very first accepted frame
        self._slop = config.slop_ns
        self._timeout = config.timeout_ns

    # -- input -------------------------------------------------------------------------
    def push(self, frame: Frame) -> DropReason | None:
        """Offer a frame; returns the drop reason if it was rejected on arrival."""
        with self._lock:
            channel = self._channels[frame.modality]
            reason = self._reject_reason(frame, channel)
            if reason is not None:
                self.drops[reason.value] += 1
                return reason
            if self._started is None:
                self._started = frame.arrival.clock_ns
            self._update_health(frame, channel)
            channel.last_stamp = frame.stamp_ns
            channel.last_arrival = frame.arrival.clock_ns
            channel.last_resolution = frame.resolution
            channel.buffer.append(frame)
            if len(channel.buffer) > self.config.buffer_size:
                channel.buffer.popleft()
                self.drops[DropReason.BUFFER_OVERFLOW.value] += 1
            self._match(frame.arrival.clock_ns)
            return None

    def poll(self, now: int) -> None:
        """Re-evaluate health at ``now`` ns (a sensor that stopped sends nothing to trigger it)."""
        with self._lock:
            self._match(now)

    def flush(self) -> int:
        """End of input: count every still-buffered frame as END_OF_INPUT; returns how many."""
        with self._lock:
            left = sum(len(c.buffer) for c in self._channels.values())
            for channel in self._channels.values():
                channel.buffer.clear()
            if left:
                self.drops[DropReason.END_OF_INPUT.value] += left
            return left

    # -- state -------------------------------------------------------------------------
    def health(self, now: int) -> dict[str, Health]:
        with self._lock:
            return {m: self._health(m, now) for m in MODALITIES}

    def drop_counts(self) -> Counter[str]:
        """A consistent copy of the drop counters."""
        with self._lock:
            return Counter(self.drops)

    def active(self, now: int) -> Subset:
        with self._lock:
            return self._active(now)

    # -- internals (lock held) ---------------------------------------------------------
    def _alive(self, channel: _Channel, now: int) -> bool:
        return channel.last_arrival is not None and now - channel.last_arrival <= self._timeout

    def _health(self, modality: str, now: int) -> Health:
        channel = self._channels[modality]
        if not self._alive(channel, now):
            return Health.STALE
        return Health.OK if channel.admitted else Health.RECOVERING

    def _active(self, now: int) -> Subset:
        return canonical(m for m in MODALITIES if self._health(m, now) is Health.OK)

    def _reject_reason(self, frame: Frame, channel: _Channel) -> DropReason | None:
        if channel.last_stamp is not None and frame.stamp_ns <= channel.last_stamp:
            return DropReason.STAMP_NOT_INCREASING
        if self._resolutions is not None:
            reference: tuple[int, int] | None = self._resolutions[frame.modality]
        else:
            reference = self._reference_resolution(frame.modality, frame.arrival.clock_ns)
        if reference is not None and frame.resolution != reference:
            self.mismatched[frame.modality] = (reference, frame.resolution)
            return DropReason.RESOLUTION_MISMATCH
        return None

    def expect_resolutions(self, resolutions: Mapping[str, tuple[int, int]]) -> None:
        """From now on, hold each camera to its own size (a calibration that became complete)."""
        with self._lock:
            self._resolutions = dict(resolutions)
            self.mismatched.clear()

    def _reference_resolution(self, modality: str, now: int) -> tuple[int, int] | None:
        """Resolution set by the highest-priority alive modality above ``modality``, if any."""
        for other in MODALITIES:
            if other == modality:
                return None
            channel = self._channels[other]
            if self._alive(channel, now):
                return channel.last_resolution
        return None

    def _update_health(self, frame: Frame, channel: _Channel) -> None:
        if channel.admitted and not self._alive(channel, frame.arrival.clock_ns):
            channel.admitted = False  # it went stale: it must earn re-admission
            channel.streak = 0
        if channel.admitted:
            return
        first_ever = channel.last_arrival is None
        channel.streak = channel.streak + 1 if self._alive(channel, frame.arrival.clock_ns) else 1
        # At start-up every sensor is admitted on its first frame; hysteresis is for returns.
        if first_ever or channel.streak >= self.config.readmit_frames:
            channel.admitted = True

    def _expected(self, now: int) -> tuple[str, ...]:
        """Modalities never heard from, still within the start-up grace period."""
        if self._started is None or now - self._started > self._timeout:
            return ()
        return tuple(m for m, c in self._channels.items() if c.last_arrival is None)

    def _match(self, now: int) -> None:
        active = self._active(now)
        expected = self._expected(now)
        for modality in MODALITIES:
            if modality not in active:
                self._discard_inactive(modality, now)
        if not active:
            return
        anchor_modality, others = active[0], active[1:]
        anchors = self._channels[anchor_modality].buffer
        missing_required = [m for m in self.config.required if m not in active]
        while anchors:
            if expected:
                return
            anchor = anchors[0]
            if missing_required:
                anchors.popleft()
                self.drops[DropReason.REQUIRED_MISSING.value] += 1
                continue
            matches: dict[str, Frame] = {}
            waiting = False
            for modality in others:
                match = self._closest(modality, anchor.stamp_ns)
                if match is not None:
                    matches[modality] = match
                    continue
                newest = self._channels[modality].last_stamp
                if newest is not None and newest < anchor.stamp_ns + self._slop:
                    waiting = True
            if waiting:
                return
            anchors.popleft()
            if len(matches) < len(others):
                self.drops[DropReason.NO_MATCH.value] += 1
                continue
            for modality, match in matches.items():
                self._consume_through(modality, match)
            self.emitted += 1
            self.frames_emitted += 1 + len(matches)
            self._emit(FrameSet(anchor, {anchor_modality: anchor, **matches}))

    def _closest(self, modality: str, stamp: int) -> Frame | None:
        best = None
        for frame in self._channels[modality].buffer:
            gap = abs(frame.stamp_ns - stamp)
            if gap <= self._slop and (best is None or gap < abs(best.stamp_ns - stamp)):
                best = frame
        return best

    def _consume_through(self, modality: str, match: Frame) -> None:
        """Remove ``match`` and every older frame (which no later anchor can match better)."""
        buffer = self._channels[modality].buffer
        while buffer:
            frame = buffer.popleft()
            if frame is match:
                return
            self.drops[DropReason.UNMATCHED.value] += 1

    def _discard_inactive(self, modality: str, now: int) -> None:
        """Frames of a stale or recovering modality can never join a set: count and drop them."""
        channel = self._channels[modality]
        reason = DropReason.NOT_ADMITTED if self._alive(channel, now) else DropReason.UNMATCHED
        while channel.buffer:
            channel.buffer.popleft()
            self.drops[reason.value] += 1
