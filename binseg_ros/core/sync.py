"""Approximate-time synchroniser with per-modality health and missing-sensor fallback.

ROS-free: stamps and arrivals are integer nanoseconds (:mod:`binseg_ros.core.frame`). The
adapters (node, bag evaluator) push frames as they arrive and call
:meth:`Synchronizer.poll` on a timer; emitted :class:`FrameSet` s go to whatever runs
inference.

Semantics (``shared/DESIGN.md`` §3):

- A modality is *alive* while its last accepted frame arrived less than ``modality_timeout``
  ago. A modality that was stale is *admitted* again only after ``readmit_frames``
  consecutive frames, each within ``modality_timeout`` of the previous (hysteresis). The
  admitted, alive modalities are *tracked*; frames of the others are dropped.
- The anchor modality is the first tracked one in ``rgb, depth, thermal`` order. (DESIGN says
  "the newest alive modality" when RGB is gone; a fixed priority is deterministic, which the
  replay evaluation relies on to reproduce the node's output frame for frame.)
- At start-up a modality not yet heard from is *expected* for ``modality_timeout`` after the
  first frame of any modality, so the first sets wait for all sensors instead of starting
  on whichever camera published first.
- An anchor frame is emitted with, for each other tracked modality, the buffered frame whose
  stamp is closest to it within ``slop``, of those that arrived before the anchor's *due*
  time for it. Matched frames are consumed, so no frame is used twice; frames stamped before
  a match, or more than ``slop`` before a finished anchor, can never match later and are dropped.
- ``slop`` bounds stamps, ``max_delay`` transport: the due time is when a frame stamped at the
  window's end would arrive with the modality's recent transport delays (their longest plus their
  spread, or the anchor's delay if longer), but at most ``max_delay`` after the anchor, so sensors
  late but steady (slow USB, on-device depth, a decode backlog) are matched. Due times are fixed
  when the anchor arrives: which frames join a set depends on arrivals, not polls.
- An anchor without such a frame waits until its due time while the modality could still deliver
  one (its newest stamp is below ``anchor + slop``); push and poll check. Waiting longer would hold
  sets through a sensor's gaps to release them at once, and the latest-wins worker keeps one.
- Without that frame the set is emitted without the modality (a smaller subset), or, if it is
  ``required``, dropped as ``no_match``. It *missed* the set if that frame came after the due time
  or its stream skipped one there (:class:`~binseg_ros.core.gaps.Cadence`); a camera merely slower
  than the anchor misses nothing. The verdict waits for its next frame (or its going stale), which
  cannot join a set before it.
- A modality that missed a set is *benched* (:class:`~binseg_ros.core.gaps.Bench`; a required one
  never is): still waited for and matched, but its frames are left out (counted ``not_admitted``)
  until it is matched in ``need`` consecutive sets, the last of which it rejoins. ``need`` is
  ``readmit_frames``, doubled instead if it misses again within ``need`` sets of rejoining, so it
  stays at most twice its longest run. Anchoring clears a bench (an anchor cannot miss its own
  sets), as going stale does. The *active* subset is the tracked modalities that are not benched.
- A frame stamped at or before its modality's last is refused (``stamp_not_increasing``) unless it
  shows that its clock went back (:class:`~binseg_ros.core.gaps.Rewind`): the modality then starts
  afresh from it, as at start-up, and the jump is counted (``clock_jumps``).
- Arrivals are on the node's clock. When it goes back by more than ``modality_timeout`` (a
  simulation reset under use_sim_time; a push or probe racing another is off by far less), the
  times kept on it move back with it, as if the jump took no time: a sensor that sends nothing
  more goes stale ``modality_timeout`` after it. Frames held for sets join none (``unmatched``).
- Without a rig, a frame whose size differs from another alive modality's last is refused
  (``resolution_mismatch``): the odd frame is dropped, whichever modality, not its siblings.

Every frame that is not part of an emitted set is counted once, under a reason; per modality,
:meth:`Synchronizer.misses` says how many finished anchors waited for it and how many it missed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from enum import Enum

from binseg_ros.core.drops import DropReason
from binseg_ros.core.frame import Frame, FrameSet, seconds_to_ns
from binseg_ros.core.gaps import Channel, Held, Misses
from binseg_ros.core.sync_config import SyncConfig
from binseg_ros.modalities import MODALITIES, Subset, canonical


class Health(str, Enum):
    OK = "OK"
    STALE = "STALE"
    RECOVERING = "RECOVERING"  # frames arriving, not in sets: back from stale, or benched


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
        must have the size of the other alive modalities' (inputs already registered)."""
        self._configure(config)
        self._resolutions = dict(resolutions) if resolutions is not None else None
        self.mismatched: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}  # modality → (expected, got), last
        self._emit = emit
        self._lock = threading.Lock()
        self._channels = {m: Channel() for m in MODALITIES}
        self.drops: Counter[str] = Counter()
        self.clock_jumps: Counter[str] = Counter()  # modality → times its clock went back
        self.emitted = 0
        self.frames_emitted = 0  # frames inside emitted sets: with drops, accounts for every frame
        self._started: int | None = None  # arrival (ns) of the very first accepted frame
        self._latest: int | None = None  # the latest node time (ns) it was given

    def _configure(self, config: SyncConfig) -> None:
        self.config = config
        self._slop, self._timeout = seconds_to_ns(config.slop), seconds_to_ns(config.modality_timeout)
        self._max_delay = seconds_to_ns(config.max_delay)

    def reconfigure(self, config: SyncConfig) -> None:
        """New settings from the next push or poll on (a live parameter change); an anchor
        already buffered keeps the due times it got on arrival."""
        with self._lock:
            self._configure(config)

    # -- input -------------------------------------------------------------------------
    def push(self, frame: Frame) -> DropReason | None:
        """Offer a frame; returns the drop reason if it was rejected on arrival."""
        with self._lock:
            self._follow_clock(frame.arrival.clock_ns)
            channel = self._channels[frame.modality]
            reason = self._reject_reason(frame, channel)
            if reason is not None:
                self.drops[reason.value] += 1
                return reason
            if self._started is None:
                self._started = frame.arrival.clock_ns
            self._update_health(frame, channel)
            timing = (frame, self._slop, self._max_delay)
            due = {m: c.cadence.due(*timing) for m, c in self._channels.items() if m != frame.modality}
            channel.buffer.append(Held(frame, due))
            channel.last_resolution = frame.resolution
            self._bench(frame.modality, channel.cadence.add(frame.stamp_ns, frame.arrival.clock_ns))
            if len(channel.buffer) > self.config.buffer_size:
                channel.buffer.popleft()
                self.drops[DropReason.BUFFER_OVERFLOW.value] += 1
            self._match(frame.arrival.clock_ns)
            return None

    def poll(self, now: int) -> None:
        """Re-evaluate at ``now`` ns: a sensor that stopped sends nothing to end a wait or time out."""
        with self._lock:
            self._follow_clock(now)
            self._match(now)

    def flush(self) -> int:
        """End of input: count every still-buffered frame as END_OF_INPUT; returns how many."""
        with self._lock:
            left = sum(len(c.buffer) for c in self._channels.values())
            for channel in self._channels.values():
                self._discard(channel, DropReason.END_OF_INPUT)
            return left

    # -- state -------------------------------------------------------------------------
    def health(self, now: int) -> dict[str, Health]:
        with self._lock:
            self._follow_clock(now)
            return {m: self._health(m, now) for m in MODALITIES}

    def drop_counts(self) -> Counter[str]:
        """A consistent copy of the drop counters."""
        with self._lock:
            return Counter(self.drops)

    def jumps(self) -> dict[str, int]:
        """A consistent copy of the clock-jump counters."""
        with self._lock:
            return dict(self.clock_jumps)

    def misses(self) -> dict[str, Misses]:
        """A consistent copy of each modality's miss counters (a flapping sensor's miss rate)."""
        with self._lock:
            return {m: Misses(c.cadence.missed, c.expected) for m, c in self._channels.items()}

    def active(self, now: int) -> Subset:
        with self._lock:
            self._follow_clock(now)
            return self._active(now)

    def intervals(self) -> dict[str, float]:
        """Each modality's current frame interval (ns), once it has one."""
        with self._lock:
            return {m: i for m, c in self._channels.items() if (i := c.cadence.interval) is not None}

    # -- internals (lock held) ---------------------------------------------------------
    def _follow_clock(self, now: int) -> None:
        """Re-base the times kept on the node's clock if it went back (see the module's doc)."""
        if self._latest is None or now >= self._latest - self._timeout:
            self._latest = now if self._latest is None else max(self._latest, now)
            return
        jump, self._latest = now - self._latest, now
        self._started = None if self._started is None else self._started + jump
        for channel in self._channels.values():
            channel.cadence.shift(jump)
            channel.rewind.clear()  # a run of stamps going back is judged afresh on the new clock
            self._discard(channel, DropReason.UNMATCHED)

    def _alive(self, channel: Channel, now: int) -> bool:
        return channel.cadence.last_arrival is not None and now - channel.cadence.last_arrival <= self._timeout

    def _health(self, modality: str, now: int) -> Health:
        channel = self._channels[modality]
        if not self._alive(channel, now):
            return Health.STALE
        return Health.OK if channel.admitted and not channel.bench.benched else Health.RECOVERING

    def _active(self, now: int) -> Subset:
        return canonical(m for m in MODALITIES if self._health(m, now) is Health.OK)

    def _reject_reason(self, frame: Frame, channel: Channel) -> DropReason | None:
        if not self._stamp_follows(frame, channel):
            return DropReason.STAMP_NOT_INCREASING
        fixed = self._resolutions
        reference = fixed[frame.modality] if fixed is not None else self._sibling_resolution(frame)
        if reference is not None and frame.resolution != reference:
            self.mismatched[frame.modality] = (reference, frame.resolution)
            return DropReason.RESOLUTION_MISMATCH
        return None

    def _stamp_follows(self, frame: Frame, channel: Channel) -> bool:
        """Whether ``frame`` is stamped after its modality's last frame, or shows that its clock
        went back; then the modality restarts: its old timeline's frames can join no set now."""
        last = channel.cadence.last_stamp
        if last is None or frame.stamp_ns > last:
            channel.rewind.clear()
            return True
        if not channel.rewind.back(frame.stamp_ns, frame.arrival.clock_ns, self._timeout):
            return False
        self.clock_jumps[frame.modality] += 1
        channel.cadence.restart()  # as at start-up: admitted on this frame, the run was its hysteresis
        self._discard(channel, DropReason.UNMATCHED)
        return True

    def expect_resolutions(self, resolutions: Mapping[str, tuple[int, int]]) -> None:
        """From now on, hold each camera to its own size (a calibration that became complete)."""
        with self._lock:
            self._resolutions = dict(resolutions)
            self.mismatched.clear()

    def _sibling_resolution(self, frame: Frame) -> tuple[int, int] | None:
        """The size of another alive modality's last frame that ``frame``'s differs from, if any."""
        now = frame.arrival.clock_ns
        sizes = (c.last_resolution for m, c in self._channels.items() if m != frame.modality and self._alive(c, now))
        return next((size for size in sizes if size != frame.resolution), None)

    def _update_health(self, frame: Frame, channel: Channel) -> None:
        if channel.admitted and not self._alive(channel, frame.arrival.clock_ns):
            channel.admitted = False  # it went stale: it must earn re-admission, which also ends a bench
            channel.streak = 0
            channel.cadence.lapse()
            channel.bench.clear()
        if channel.admitted:
            return
        first_ever = channel.cadence.last_arrival is None
        channel.streak = channel.streak + 1 if self._alive(channel, frame.arrival.clock_ns) else 1
        # At start-up every sensor is admitted on its first frame; hysteresis is for returns.
        if first_ever or channel.streak >= self.config.readmit_frames:
            channel.admitted = True

    def _expected(self, now: int) -> tuple[str, ...]:
        """Modalities never heard from, still within the start-up grace period."""
        if self._started is None or now - self._started > self._timeout:
            return ()
        return tuple(m for m, c in self._channels.items() if c.cadence.last_arrival is None)

    def _match(self, now: int) -> None:
        tracked = canonical(m for m, c in self._channels.items() if c.admitted and self._alive(c, now))
        for modality in MODALITIES:
            if modality not in tracked:
                self._channels[modality].cadence.lapse()  # a stale one missed the sets it still owed
                self._discard_inactive(modality, now)
        if not tracked or self._expected(now):
            return
        anchor_modality, others = tracked[0], tracked[1:]
        self._channels[anchor_modality].bench.clear()  # it cannot miss its own sets
        anchors = self._channels[anchor_modality].buffer
        if any(m not in tracked for m in self.config.required):
            self.drops[DropReason.REQUIRED_MISSING.value] += len(anchors)
            anchors.clear()
        while anchors:
            anchor = anchors[0]
            matches = {m: f for m in others if (f := self._closest(m, anchor)) is not None}
            if self._waits(anchor, [m for m in others if m not in matches], now):
                return
            anchors.popleft()
            self._finish(anchor, others, matches)

    def _waits(self, anchor: Held, missing: list[str], now: int) -> bool:
        """Whether ``anchor`` waits for a frame of a ``missing`` (tracked, so heard from) modality."""
        window_end = anchor.frame.stamp_ns + self._slop
        return any(now < anchor.due[m] and self._channels[m].newest_stamp < window_end for m in missing)

    def _finish(self, anchor: Held, others: tuple[str, ...], matches: dict[str, Held]) -> None:
        """Emit ``anchor``'s set, or drop it when a required modality has no frame in it."""
        window_end = anchor.frame.stamp_ns + self._slop
        unmatched = [m for m in others if m not in matches]
        for modality in (anchor.frame.modality, *others):
            self._channels[modality].expected += 1
        for modality in unmatched:
            self._bench(modality, self._channels[modality].cadence.owe(window_end, anchor.due[modality]))
        for modality in others:
            self._drop_before(modality, anchor.frame.stamp_ns - self._slop)
        if any(m in self.config.required for m in unmatched):
            self.drops[DropReason.NO_MATCH.value] += 1  # its matches stay buffered for later anchors
            return
        frames = {anchor.frame.modality: anchor.frame}
        for modality, match in matches.items():
            self._drop_before(modality, match.frame.stamp_ns)  # no later anchor can match them better
            self._channels[modality].buffer.popleft()  # the match: no frame is used twice
            if self._channels[modality].bench.matched():
                frames[modality] = match.frame
            else:
                self.drops[DropReason.NOT_ADMITTED.value] += 1
        self.emitted += 1
        self.frames_emitted += len(frames)
        self._emit(FrameSet(anchor.frame, frames))

    def _bench(self, modality: str, missed: int) -> None:
        """Bench it if it turned out to have missed sets (a required one never is: sets go without it)."""
        if missed and modality not in self.config.required:
            self._channels[modality].bench.miss(self.config.readmit_frames)

    def _closest(self, modality: str, anchor: Held) -> Held | None:
        """Its frame nearest ``anchor`` within ``slop``, of those that came before the anchor's due time."""
        stamp, due = anchor.frame.stamp_ns, anchor.due[modality]
        came = [h for h in self._channels[modality].buffer if h.frame.arrival.clock_ns < due]
        nearest = min(came, key=lambda h: abs(h.frame.stamp_ns - stamp), default=None)
        return nearest if nearest is not None and abs(nearest.frame.stamp_ns - stamp) <= self._slop else None

    def _drop_before(self, modality: str, stamp: int) -> None:
        """Drop its frames stamped before ``stamp`` (its buffer is in stamp order): unmatched, for good."""
        buffer = self._channels[modality].buffer
        while buffer and buffer[0].frame.stamp_ns < stamp:
            buffer.popleft()
            self.drops[DropReason.UNMATCHED.value] += 1

    def _discard_inactive(self, modality: str, now: int) -> None:
        """Frames of an untracked modality (stale, or back but not admitted) join no set: count and drop them."""
        channel = self._channels[modality]
        self._discard(channel, DropReason.NOT_ADMITTED if self._alive(channel, now) else DropReason.UNMATCHED)

    def _discard(self, channel: Channel, reason: DropReason) -> None:
        """Count and drop every frame ``channel`` holds."""
        if channel.buffer:
            self.drops[reason.value] += len(channel.buffer)
            channel.buffer.clear()
