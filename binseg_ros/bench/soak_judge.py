"""``binseg bench soak``: judging one fault episode from what the player saw of the node (its
``/diagnostics`` snapshots, when masks came, what it was sent, its parameter service's answers).

Only evidence from one diagnostics period after a fault ends counts for "after it": a status or
a mask made before the fault reached the node proves nothing about surviving it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from binseg_ros.bench.soak import MALFORMED, SOAK_THRESHOLD, Episode, EpisodeResult, Fault, gap_end
from binseg_ros.core.drops import DropReason
from binseg_ros.modalities import MODALITIES, Subset, subset_name

WARN = 1  # diagnostic_msgs/DiagnosticStatus.WARN: the level a snapshot's status carries
DIAGNOSTICS_S = 1.0  # the node's diagnostics_period (its default): a snapshot is at most this old
EVERY_SENSOR = subset_name(Subset(MODALITIES))


@dataclass(frozen=True)
class Snapshot:
    """One ``/diagnostics`` message as received: status name (after ``node: ``) → its values."""

    at: float  # monotonic receive time
    statuses: dict[str, dict[str, object]]

    def counters(self) -> dict[str, int]:
        """The overall status's integer values (sets, masks, frames_in.*, drops.*, degraded.*, ...)."""
        values = self.statuses.get("segmentation", {})
        return {k: int(v) for k, v in values.items() if isinstance(v, str) and v.isdigit()}

    def running(self) -> str:
        return str(self.statuses.get("segmentation", {}).get("running_subset", ""))

    def level(self, modality: str) -> int:
        return int(self.statuses.get(modality, {}).get("level", -1))  # type: ignore[call-overload]


@dataclass
class Observations:
    """What the player saw of the node: its ``/diagnostics``, when masks came, what it was sent."""

    snapshots: list[Snapshot] = field(default_factory=list)
    mask_times: list[float] = field(default_factory=list)  # monotonic receive times
    odd_sized: Counter[int] = field(default_factory=Counter)  # minute → RGB images sent at the other size

    # Both lists grow in time order (callbacks append as messages arrive): bisect, not scan.
    def before(self, at: float) -> Snapshot | None:
        """The last snapshot received before ``at``."""
        index = bisect_left(self.snapshots, at, key=_received)
        return self.snapshots[index - 1] if index else None

    def between(self, start: float, end: float) -> list[Snapshot]:
        return self.snapshots[
            bisect_left(self.snapshots, start, key=_received) : bisect_left(self.snapshots, end, key=_received)
        ]

    def masks_between(self, start: float, end: float) -> int:
        return bisect_left(self.mask_times, end) - bisect_left(self.mask_times, start)


def _received(snapshot: Snapshot) -> float:
    return snapshot.at


def judge(
    e: Episode,
    minute: int,
    t0: float,
    seen: Observations,
    running: bool,
    rate: float,
    answers: Mapping[str, bool | None],
) -> EpisodeResult:
    """Episode ``e`` of ``minute`` (which began at monotonic ``t0``): ``running`` whether the node
    still runs, ``answers`` the parameter service's (accepted, refused, or None for no answer)."""
    start, end, until = t0 + e.start_s, t0 + e.end_s, t0 + gap_end(e)
    before, after = seen.before(start), seen.before(until)
    old, new = (before.counters() if before else {}), (after.counters() if after else {})

    def delta(key: str) -> int:
        return new.get(key, 0) - old.get(key, 0)

    during = seen.between(start, end + DIAGNOSTICS_S)
    settled = end + DIAGNOSTICS_S  # what the node reports from here on was made after the fault
    checks = {
        "node running": running,
        "masks for half the anchors after it": seen.masks_between(settled, until) >= 0.5 * rate * (until - settled),
        "back on every sensor": after is not None and after.at >= settled and after.running() == EVERY_SENSOR,
    }
    detail = ""
    if e.fault is Fault.BAD_STAMPS:
        checks |= {
            "bad_stamp +4": delta("drops.bad_stamp") == 4,
            "no stamp_not_increasing": delta("drops.stamp_not_increasing") == 0,
        }
    elif e.fault is Fault.MALFORMED:
        checks |= {f"{k.value} +1": delta(f"drops.{k.value}") == 1 for k in MALFORMED}
    elif e.fault is Fault.DEAD:
        checks["fell back to rgb+depth"] = any(s.running() == "rgb+depth" for s in during)
    elif e.fault is Fault.FLAPPING:
        checks["thermal WARN while flapping"] = any(s.level("thermal") == WARN for s in during)
        anchors = round((e.end_s - e.start_s) * rate)
        detail = f"{seen.masks_between(start, end)} masks for {anchors} anchors in the flap"
    elif e.fault is Fault.DEGRADED:
        left_out = sum(delta(k) for k in new if k.startswith("degraded.rgb."))
        checks["rgb left out by the gate"] = left_out > 0 and any(s.running() == "depth+thermal" for s in during)
        detail = f"{left_out} rgb frames left out"
    elif e.fault is Fault.RESOLUTION:
        odd = seen.odd_sized[minute]
        checks["resolution_mismatch = odd-sized images"] = delta(f"drops.{DropReason.RESOLUTION_MISMATCH.value}") == odd
        detail = f"{odd} odd-sized rgb images"
    elif e.fault is Fault.CLOCK_JUMP:
        checks |= {f"clock_jumps.{m} +1": delta(f"clock_jumps.{m}") == 1 for m in MODALITIES}
    elif e.fault is Fault.PARAMETERS:
        checks |= {
            f"threshold {SOAK_THRESHOLD} accepted": answers.get("change") is True,
            "NaN modality_timeout refused": answers.get("nan") is False,
            "threshold restored": answers.get("restore") is True,
        }
    return EpisodeResult(minute, e.fault, checks, detail)
