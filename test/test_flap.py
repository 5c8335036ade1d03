"""Sensors that flap, lag, run slower or die: output keeps the anchors' pace on a steady engine.

The synchroniser is driven as the node drives it: frames pushed at their arrival on the node
clock, and :meth:`~binseg_ros.core.sync.Synchronizer.poll` on the node's timer in between.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import pairwise

import numpy as np
import pytest

from binseg_ros.core.frame import Arrival, Frame, FrameSet
from binseg_ros.core.sync import Health, Misses, SyncConfig, Synchronizer
from binseg_ros.ros.node import POLL_PERIOD

RATE = 15.0  # Hz, every camera
FLAP_HZ = 2.0  # thermal on for half a flap period, off for the other half
FLAP_S = 10.0
LATENCY = {"rgb": 0.010, "depth": 0.015, "thermal": 0.025}  # s, capture to arrival on the node clock
PHASE = {"rgb": 0.0, "depth": 0.004, "thermal": -0.007}  # s, capture offset against rgb
ALL = ("rgb", "depth", "thermal")
IMAGES = {"rgb": np.zeros((4, 6, 3), np.uint8), "depth": np.zeros((4, 6), np.float32)}
IMAGES["thermal"] = IMAGES["depth"]


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


class Rig:
    """Pushes each camera's frames at their arrival and polls on the node's timer, in time order."""

    def __init__(self, config: SyncConfig = SyncConfig()) -> None:
        self.sets: list[FrameSet] = []
        self.sync = Synchronizer(config, self.sets.append)
        self.pushed: Counter[str] = Counter()
        self.largest_burst = 0  # most sets that went out in one push or poll
        self._events: list[tuple[float, int, Frame | None]] = []

    def camera(
        self, modality: str, start: float, end: float, on: Callable[[float], bool] = lambda _t: True, rate: float = RATE
    ) -> None:
        """Frames at ``rate`` between ``start`` and ``end`` (capture times, seconds) while ``on``."""
        for index in range(round((end - start) * rate)):
            capture = start + index / rate + PHASE[modality]
            if on(capture):
                self.frame(modality, capture, capture + LATENCY[modality])

    def frame(self, modality: str, capture: float, arrival: float) -> None:
        frame = Frame(modality, ns(capture), Arrival(ns(arrival)), IMAGES[modality])
        self._events.append((arrival, len(self._events), frame))

    def run(self, end: float) -> None:
        self._events += [(tick * POLL_PERIOD, -1, None) for tick in range(round(end / POLL_PERIOD) + 1)]
        for now, _, frame in sorted(self._events, key=lambda event: event[:2]):
            before = len(self.sets)
            if frame is None:
                self.sync.poll(ns(now))
            else:
                self.pushed[frame.modality] += 1
                self.sync.push(frame)
            self.largest_burst = max(self.largest_burst, len(self.sets) - before)
        self._events = []

    def accounted(self) -> bool:
        """Every pushed frame is in an emitted set or counted under a reason, once."""
        self.sync.flush()
        used = sum(len(s.frames) for s in self.sets)
        return used == self.sync.frames_emitted and used + self.sync.drops.total() == self.pushed.total()


def thermal_on(capture: float) -> bool:
    return capture % (1 / FLAP_HZ) < 0.5 / FLAP_HZ


def skipping(modality: str, indices: set[int]) -> Callable[[float], bool]:
    """A camera filter that leaves out the frames with these indices."""
    return lambda capture: round((capture - PHASE[modality]) * RATE) not in indices


def switches(sets: list[FrameSet]) -> int:
    return sum(a.subset != b.subset for a, b in pairwise(sets))


def test_flapping_thermal_keeps_the_output_and_one_engine():
    rig = Rig()
    for modality in ("rgb", "depth"):
        rig.camera(modality, 0.0, FLAP_S + 2.0)
    rig.camera("thermal", 0.0, FLAP_S, thermal_on)
    rig.camera("thermal", FLAP_S, FLAP_S + 2.0)  # then it stays
    rig.run(FLAP_S + 2.0)
    flap = [s for s in rig.sets if s.anchor.stamp_ns < ns(FLAP_S)]
    anchors = round(FLAP_S * RATE)
    assert all(s.anchor.modality == "rgb" for s in rig.sets)
    assert len({s.anchor.stamp_ns for s in rig.sets}) == len(rig.sets)  # one set per anchor at most
    assert len(flap) >= 0.9 * anchors
    # Following the flap would switch engines twice per flap period; hysteresis settles instead.
    cycles = round(FLAP_S * FLAP_HZ)
    assert switches(flap) < cycles
    assert switches(flap[len(flap) // 2 :]) == 0
    assert Counter(s.subset for s in flap).most_common(1)[0][0] == ("rgb", "depth")
    # Sets leave at the anchors' pace: none supersedes another in the latest-wins worker.
    assert rig.largest_burst == 1
    assert rig.sets[-1].subset == ALL  # thermal that stays rejoins
    misses = rig.sync.misses()["thermal"]
    assert misses.expected == len(rig.sets)
    assert abs(misses.missed - anchors / 2) <= cycles  # off half the flap, give or take an anchor per off period
    assert rig.accounted()


def test_a_late_thermal_frame_within_slop_joins_its_set():
    config = SyncConfig()
    late = 5 / RATE  # the anchor's capture time, seconds
    rig = Rig(config)
    for modality in ("rgb", "depth"):
        rig.camera(modality, 0.0, 1.0)
    rig.camera("thermal", 0.0, 1.0, skipping("thermal", {round(late * RATE)}))
    # Captured well within slop of its anchor, and slower in transport than the anchor by less than slop.
    thermal = late + config.slop / 2
    rig.frame("thermal", thermal, late + LATENCY["rgb"] + config.slop * 0.9)
    rig.run(1.0)
    joined = next(s for s in rig.sets if s.anchor.stamp_ns == ns(late))
    assert joined.frames["thermal"].stamp_ns == ns(thermal)
    assert {s.subset for s in rig.sets} == {ALL}
    assert rig.sync.misses()["thermal"].missed == 0
    assert rig.accounted()


def test_a_dead_thermal_leaves_rgb_and_depth_running():
    config = SyncConfig()
    dies, end = 1.0, 3.0
    rig = Rig(config)
    for modality in ("rgb", "depth"):
        rig.camera(modality, 0.0, end)
    rig.camera("thermal", 0.0, dies)
    rig.run(end)
    after = [s for s in rig.sets if s.anchor.stamp_ns >= ns(dies)]
    assert len(after) >= 0.9 * (end - dies) * RATE  # no gap while thermal times out
    assert {s.subset for s in after} == {("rgb", "depth")}
    assert rig.sync.health(ns(end))["thermal"] is Health.STALE
    assert rig.sync.misses()["thermal"].missed > 0
    assert rig.accounted()


def test_a_benched_modality_earns_its_way_back_and_relapses_cost_more():
    config = SyncConfig(readmit_frames=3)
    rig = Rig(config)
    for modality in ("rgb", "depth"):
        rig.camera(modality, 0.0, 4.0)
    # Thermal misses one frame, comes back for a while, then misses one more soon after rejoining.
    gaps = {10, 15}
    rig.camera("thermal", 0.0, 4.0, skipping("thermal", gaps))
    rig.run(4.0)
    with_thermal = ["thermal" in s.frames for s in rig.sets]
    first_out = with_thermal.index(False)
    back = with_thermal.index(True, first_out)
    # Left out of the set it missed and of the next matches; back with its readmit_frames-th match in a row.
    assert back - first_out == config.readmit_frames
    second_out = with_thermal.index(False, back)
    second_back = with_thermal.index(True, second_out)
    assert second_back - second_out > back - first_out
    assert all(with_thermal[second_back:])
    assert rig.sync.misses()["thermal"] == Misses(missed=len(gaps), expected=len(rig.sets))
    assert rig.accounted()


def test_slower_cameras_are_in_their_share_of_sets_and_never_benched():
    """Depth at 6 Hz and thermal at 9 Hz beside 15 Hz RGB (``binseg make-bag --rates``): an anchor with no
    frame of a slower camera within slop goes out without it, but that is its rate, not a miss."""
    end = 5.0
    rates = {"rgb": RATE, "depth": 6.0, "thermal": 9.0}
    rig = Rig()
    for modality, rate in rates.items():
        rig.camera(modality, 0.0, end, rate=rate)
    rig.run(end)
    assert len(rig.sets) >= rig.pushed["rgb"] - 1  # every anchor but perhaps the last, still waiting
    for modality in ("depth", "thermal"):
        used = sum(modality in s.frames for s in rig.sets)
        assert used >= rig.pushed[modality] - 1  # each of its frames is in a set
        assert used / len(rig.sets) == pytest.approx(rates[modality] / RATE, abs=0.05)
        assert rig.sync.misses()[modality] == Misses(missed=0, expected=len(rig.sets))
    assert rig.sync.drops["not_admitted"] == 0  # never benched
    assert set(rig.sync.health(ns(end)).values()) == {Health.OK}
    assert rig.largest_burst == 1
    assert rig.accounted()


@pytest.mark.parametrize("within_max_delay", [True, False])
def test_a_sensor_later_than_slop_is_matched_within_max_delay(within_max_delay):
    """Thermal with the same stamps as RGB but reaching the node 0.1 s after it (slow USB, a decode
    backlog): slop bounds stamps, not transport, so with the default max_delay it is in every set;
    with a max_delay below its lag it is left out, and the sets still keep the anchors' pace."""
    lag, end = 0.1, 3.0
    config = SyncConfig() if within_max_delay else SyncConfig(max_delay=lag / 2)
    assert config.slop < lag
    rig = Rig(config)
    for index in range(round(end * RATE)):
        capture = index / RATE
        for modality in ("rgb", "depth"):
            rig.frame(modality, capture, capture + LATENCY[modality])
        rig.frame("thermal", capture, capture + LATENCY["rgb"] + lag)
    rig.run(end)
    assert len(rig.sets) >= rig.pushed["rgb"] - 1
    assert {s.subset for s in rig.sets} == ({ALL} if within_max_delay else {("rgb", "depth")})
    thermal = rig.sync.misses()["thermal"]
    assert thermal.missed == 0 if within_max_delay else thermal.missed >= len(rig.sets) - 1
    assert rig.sync.health(ns(end))["thermal"] is (Health.OK if within_max_delay else Health.RECOVERING)
    assert rig.largest_burst == 1
    assert rig.accounted()
