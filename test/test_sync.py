"""Synchroniser semantics: matching within slop, fallback, hysteresis, drop accounting."""

from __future__ import annotations

import numpy as np
import pytest

from binseg_ros.core.frame import Arrival, Frame, FrameSet
from binseg_ros.core.sync import Health, Misses, SyncConfig, Synchronizer

IMAGE = np.zeros((4, 6), np.float32)
RGB_IMAGE = np.zeros((4, 6, 3), np.uint8)
PERIOD = 1 / 30


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


def sec(stamp_ns: int) -> float:
    return stamp_ns * 1e-9


class Rig:
    """Drives a Synchronizer with frames at given stamps (seconds here, ns inside); arrival = stamp + latency."""

    def __init__(self, **config):
        self.sets: list[FrameSet] = []
        self.sync = Synchronizer(SyncConfig(**config), self.sets.append)
        self.pushed = 0

    def push(self, modality, stamp, latency=0.01, data=None):
        self.pushed += 1
        if data is None:
            data = RGB_IMAGE if modality == "rgb" else IMAGE
        return self.sync.push(Frame(modality, ns(stamp), Arrival(ns(stamp + latency)), data))

    def poll(self, t):
        self.sync.poll(ns(t))

    def health(self, t):
        return self.sync.health(ns(t))

    def tick(self, t, modalities=("rgb", "depth", "thermal"), jitter=None):
        for m in modalities:
            self.push(m, t + (jitter[m] if jitter else 0.0))

    def accounted(self):
        used = sum(len(s.frames) for s in self.sets)
        buffered = sum(len(c.buffer) for c in self.sync._channels.values())
        return used + sum(self.sync.drops.values()) + buffered


def test_jittered_streams_give_one_set_per_rgb_frame():
    rig = Rig(slop=0.02)
    rng = np.random.default_rng(0)
    for i in range(60):
        jitter = {m: rng.uniform(-0.01, 0.01) for m in ("depth", "thermal")} | {"rgb": 0.0}
        rig.tick(i * PERIOD, jitter=jitter)
    assert len(rig.sets) >= 59  # the last one may wait for later frames
    for s in rig.sets:
        assert s.subset == ("rgb", "depth", "thermal")
        assert s.anchor.modality == "rgb" and s.frames["rgb"] is s.anchor
        assert all(abs(f.stamp_ns - s.anchor.stamp_ns) <= ns(0.02) for f in s.frames.values())
    stamps = [s.anchor.stamp_ns for s in rig.sets]
    assert stamps == sorted(set(stamps))  # never emitted twice
    assert rig.accounted() == rig.pushed


def test_thermal_dies_then_returns_with_hysteresis():
    rig = Rig(slop=0.02, modality_timeout=0.2, readmit_frames=3)
    t = 0.0
    for _ in range(10):
        rig.tick(t)
        t += PERIOD
    assert rig.sets[-1].subset == ("rgb", "depth", "thermal")
    died_at = t
    for _ in range(30):  # 1 s without thermal
        rig.tick(t, ("rgb", "depth"))
        rig.poll(t + 0.01)
        t += PERIOD
    reduced = [s for s in rig.sets if s.subset == ("rgb", "depth")]
    assert reduced, "output must continue on rgb+depth"
    assert sec(reduced[0].anchor.arrival.clock_ns) - died_at <= 0.2 + 2 * PERIOD
    assert reduced[0].anchor.stamp_ns == ns(died_at)  # not even the first anchor without thermal is lost
    assert rig.health(t)["thermal"] is Health.STALE
    # Thermal returns: admitted only after 3 consecutive frames.
    before = len(rig.sets)
    rig.tick(t)
    assert rig.health(t + 0.011)["thermal"] is Health.RECOVERING
    rig.tick(t + PERIOD)
    assert rig.sets[-1].subset == ("rgb", "depth")
    rig.tick(t + 2 * PERIOD)
    assert rig.health(t + 2 * PERIOD + 0.011)["thermal"] is Health.OK
    rig.tick(t + 3 * PERIOD)
    assert rig.sets[-1].subset == ("rgb", "depth", "thermal")
    assert len(rig.sets) > before
    assert rig.sync.drops["not_admitted"] >= 1
    assert rig.accounted() == rig.pushed


def test_rgb_dies_and_depth_becomes_the_anchor():
    rig = Rig(slop=0.02, modality_timeout=0.2)
    t = 0.0
    for _ in range(5):
        rig.tick(t)
        t += PERIOD
    for _ in range(20):
        rig.tick(t, ("depth", "thermal"))
        t += PERIOD
    last = rig.sets[-1]
    assert last.subset == ("depth", "thermal") and last.anchor.modality == "depth"
    assert rig.accounted() == rig.pushed


def test_anchor_waits_for_a_frame_that_can_still_arrive():
    rig = Rig(slop=0.02)
    rig.tick(0.0)
    rig.push("rgb", PERIOD)
    rig.push("depth", PERIOD + 0.005)
    assert len(rig.sets) == 1  # thermal for the 2nd anchor may still come
    rig.push("thermal", PERIOD - 0.004)
    assert len(rig.sets) == 2 and rig.sets[-1].frames["thermal"].stamp_ns == ns(PERIOD - 0.004)


def test_anchor_without_a_possible_match_goes_out_without_it():
    rig = Rig(slop=0.01)
    rig.tick(0.0)
    rig.tick(PERIOD)
    rig.push("rgb", 2 * PERIOD)
    rig.push("depth", 2 * PERIOD)
    rig.push("thermal", 3 * PERIOD)  # thermal skipped 2 * PERIOD: rgb@2*PERIOD can never be completed
    full = ("rgb", "depth", "thermal")
    assert [s.subset for s in rig.sets] == [full, full, ("rgb", "depth")]
    assert rig.sync.drops["no_match"] == 0
    misses = rig.sync.misses()
    assert misses["thermal"] == Misses(missed=1, expected=3) and misses["depth"] == Misses(missed=0, expected=3)
    assert rig.accounted() == rig.pushed


def test_anchor_without_a_required_match_is_dropped_and_counted():
    rig = Rig(slop=0.01, required=("thermal",))
    rig.tick(0.0)
    rig.tick(PERIOD)
    rig.push("rgb", 2 * PERIOD)
    rig.push("depth", 2 * PERIOD)
    rig.push("thermal", 3 * PERIOD)
    assert rig.sync.drops["no_match"] == 1
    assert len(rig.sets) == 2
    assert rig.sync.misses()["thermal"] == Misses(missed=1, expected=3)
    assert rig.accounted() == rig.pushed


def test_a_waiting_anchor_goes_out_before_the_next_one_arrives():
    """Waits end on the clock, not on the late sensor: sets keep the anchors' pace, no burst."""
    rig = Rig(slop=0.02)
    rig.tick(0.0)
    rig.push("rgb", PERIOD)
    rig.push("depth", PERIOD)
    assert len(rig.sets) == 1  # thermal for PERIOD may still come
    rig.poll(2 * PERIOD)
    assert [s.subset for s in rig.sets] == [("rgb", "depth", "thermal"), ("rgb", "depth")]
    assert rig.accounted() == rig.pushed


def test_whether_a_slow_frame_joins_does_not_depend_on_polls():
    """A frame within slop by stamp, but far slower in transport than its sensor's frames so far and
    than its anchor, is too late for it whether or not a poll ended the wait before it came: a replay
    without polls makes the same sets."""
    outcomes = []
    for polled in (False, True):
        rig = Rig(slop=0.02)
        rig.tick(0.0)
        rig.push("rgb", PERIOD)
        rig.push("depth", PERIOD)
        if polled:
            rig.poll(PERIOD + 0.035)
        rig.push("thermal", PERIOD, latency=0.05)
        outcomes.append([s.subset for s in rig.sets])
        assert rig.accounted() == rig.pushed
    assert outcomes[0] == outcomes[1] == [("rgb", "depth", "thermal"), ("rgb", "depth")]


def test_anchoring_clears_a_bench_so_a_later_miss_costs_no_more_than_a_first_one():
    """Depth relapses (its ``need`` doubles), anchors while RGB is down, then misses once after RGB is
    back: it rejoins after ``readmit_frames`` matches, as after any first miss, not the doubled need."""
    rig = Rig(slop=0.01, modality_timeout=0.2, readmit_frames=2)
    readmit = rig.sync.config.readmit_frames
    stamps = (i * PERIOD for i in range(1000))
    without_depth = ("rgb", "thermal")

    def tick(modalities=("rgb", "depth", "thermal")):
        stamp = next(stamps)
        rig.tick(stamp, modalities)
        return stamp

    for _ in range(3):
        tick()
    for _ in range(2):  # a miss, back after readmit matches, then a relapse soon after
        tick(without_depth)
        for _ in range(readmit):
            tick()
    assert "depth" not in rig.sets[-1].frames
    while rig.sets[-1].anchor.modality != "depth":  # rgb went stale
        tick(("depth", "thermal"))
    while rig.sets[-1].anchor.modality != "rgb":  # rgb is back: readmitted, it anchors again
        tick()
    tick()
    skipped = tick(without_depth)
    for _ in range(4 * readmit):
        tick()
    after = [s for s in rig.sets if s.anchor.stamp_ns >= ns(skipped)]
    with_depth = ["depth" in s.frames for s in after]
    assert with_depth.index(True) == readmit
    assert all(with_depth[readmit:])
    assert rig.accounted() == rig.pushed


def test_closest_frame_wins_and_older_ones_are_counted():
    rig = Rig(slop=0.03, modality_timeout=2.0)
    rig.tick(-1.0)
    rig.sets.clear()
    for stamp in (0.00, 0.01, 0.02):
        rig.push("depth", stamp)
        rig.push("thermal", stamp)
    rig.push("rgb", 0.019)
    (s,) = rig.sets
    assert s.frames["depth"].stamp_ns == ns(0.02) and s.frames["thermal"].stamp_ns == ns(0.02)
    assert rig.sync.drops["unmatched"] == 4
    assert rig.accounted() + 3 == rig.pushed  # the cleared start-up set held 3 frames


def test_bad_stamps_and_resolutions_are_rejected_and_counted():
    rig = Rig(slop=0.02)
    rig.tick(0.0)
    assert rig.push("depth", 0.0).value == "stamp_not_increasing"
    assert rig.push("thermal", -1.0, latency=1.01).value == "stamp_not_increasing"  # an old stamp, arriving now
    assert rig.push("thermal", PERIOD, data=np.zeros((8, 8), np.float32)).value == "resolution_mismatch"
    rig.tick(PERIOD)  # good frames keep flowing
    assert len(rig.sets) == 2
    assert rig.sync.drops["stamp_not_increasing"] == 2 and rig.sync.drops["resolution_mismatch"] == 1
    assert rig.accounted() == rig.pushed


def test_required_modality_missing_stops_output_and_counts():
    rig = Rig(slop=0.02, modality_timeout=0.2, required=("thermal",))
    t = 0.0
    for _ in range(3):
        rig.tick(t)
        t += PERIOD
    emitted = len(rig.sets)
    for _ in range(20):
        rig.tick(t, ("rgb", "depth"))
        rig.poll(t + 0.01)
        t += PERIOD
    assert all(s.subset == ("rgb", "depth", "thermal") for s in rig.sets)
    assert len(rig.sets) <= emitted + 1
    assert rig.sync.drops["required_missing"] > 0
    assert rig.accounted() == rig.pushed


def test_overflowing_buffer_is_counted():
    rig = Rig(slop=0.01, buffer_size=3)
    rig.tick(0.0)
    for i in range(1, 6):
        rig.push("depth", i * PERIOD)  # rgb alive but silent: depth frames wait for anchors
    assert rig.sync.drops["buffer_overflow"] == 2
    assert rig.accounted() == rig.pushed


def test_startup_waits_for_sensors_not_yet_heard_from():
    rig = Rig(slop=0.02, modality_timeout=0.3)
    rig.push("rgb", 0.0)
    rig.push("depth", 0.0)
    assert rig.sets == []  # thermal is expected during the grace period
    rig.push("thermal", 0.005)
    assert [s.subset for s in rig.sets] == [("rgb", "depth", "thermal")]
    late = Rig(slop=0.02, modality_timeout=0.3)
    t = 0.0
    while t < 0.5:  # thermal never comes: after the grace period, rgb+depth runs
        late.tick(t, ("rgb", "depth"))
        t += PERIOD
    assert late.sets and all(s.subset == ("rgb", "depth") for s in late.sets)
    assert late.accounted() == late.pushed


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("slop", 0.0, "slop"),
        ("modality_timeout", -1, "modality_timeout"),
        ("readmit_frames", 0, "readmit_frames"),
        ("buffer_size", 0, "buffer_size"),
        ("max_delay", -0.01, "max_delay"),
    ],
)
def test_config_is_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        SyncConfig(**{field: value})


def test_calibrated_cameras_keep_their_own_resolutions():
    """With a rig, each camera publishes its own size (registration comes after sync); a frame
    whose size is not its camera's is the one that is dropped, whichever modality it is."""
    sets: list[FrameSet] = []
    sync = Synchronizer(SyncConfig(slop=0.02), sets.append, {"rgb": (4, 6), "depth": (3, 5), "thermal": (2, 2)})
    images = {"rgb": RGB_IMAGE, "depth": np.zeros((3, 5), np.float32), "thermal": np.zeros((2, 2), np.float32)}
    for modality, data in images.items():
        assert sync.push(Frame(modality, 0, Arrival(ns(0.01)), data)) is None
    assert [s.subset for s in sets] == [("rgb", "depth", "thermal")]
    wrong = sync.push(Frame("depth", ns(0.05), Arrival(ns(0.06)), IMAGE))  # the RGB size, not depth's
    assert wrong is not None and wrong.value == "resolution_mismatch"
    wrong_rgb = sync.push(Frame("rgb", ns(0.05), Arrival(ns(0.06)), np.zeros((3, 5, 3), np.uint8)))
    assert wrong_rgb is not None and wrong_rgb.value == "resolution_mismatch"


def test_an_odd_sized_rgb_frame_is_dropped_not_its_siblings_nor_its_set():
    """Registered inputs share one size; an RGB frame of another size is the one refused, so the
    depth and thermal frames of its tick are not, and a required depth never misses its set."""
    rig = Rig(slop=0.02, required=("depth",))
    small_rgb = np.zeros((2, 3, 3), np.uint8)
    for tick in range(6):
        for modality in ("rgb", "depth", "thermal"):
            odd = tick == 3 and modality == "rgb"
            reason = rig.push(modality, tick * PERIOD, data=small_rgb if odd else None)
            assert (reason.value if reason else None) == ("resolution_mismatch" if odd else None)
    full = ("rgb", "depth", "thermal")
    assert [s.subset for s in rig.sets] == [full] * 5
    assert rig.sync.drops == {"resolution_mismatch": 1, "unmatched": 2}  # the odd tick's depth and thermal
    assert rig.sync.mismatched == {"rgb": ((4, 6), (2, 3))}
    assert rig.accounted() == rig.pushed


def test_cameras_that_all_change_size_are_used_again_once_the_old_size_is_stale():
    """Every camera switching size at once looks, frame by frame, like one odd camera among the
    others: the new size is taken once no frame of the old one is alive, after readmission."""
    rig = Rig(slop=0.02, modality_timeout=0.2, readmit_frames=3)
    big = {"rgb": np.zeros((8, 12, 3), np.uint8), "depth": np.zeros((8, 12), np.float32)}
    t = 0.0
    for _ in range(5):
        rig.tick(t, ("rgb", "depth"))
        t += PERIOD
    switched = t
    while t < switched + 0.5:
        for modality in ("rgb", "depth"):
            rig.push(modality, t, data=big[modality])
        t += PERIOD
    back = [s for s in rig.sets if s.anchor.resolution == (8, 12)]
    assert back and back[-1].subset == ("rgb", "depth")
    assert sec(back[0].anchor.arrival.clock_ns) <= switched + 0.2 + 3 * PERIOD
    assert rig.sync.drops["resolution_mismatch"] > 0
    assert rig.accounted() == rig.pushed


def _steady(rig: Rig, ticks: int) -> float:
    """``ticks`` full sets from t = 0; the time of the next one."""
    t = 0.0
    for _ in range(ticks):
        rig.tick(t)
        t += PERIOD
    return t


def test_a_clock_that_jumps_back_is_used_again_within_modality_timeout():
    """A bag that loops: every sensor's stamps go back 100 s while frames keep arriving. Frames
    stamped before the old last stamp are refused until the run shows a jump; then each sensor
    starts afresh and sets are full again, within modality_timeout of the jump."""
    timeout = 0.3
    rig = Rig(slop=0.02, modality_timeout=timeout)
    t = _steady(rig, ticks=10)
    jumped_at, loop = t, 100.0  # arrival keeps going; stamps restart 100 s earlier
    before = len(rig.sets)
    for _ in range(30):
        for modality in ("rgb", "depth", "thermal"):
            rig.push(modality, t - loop, latency=loop + 0.01)
        t += PERIOD
    full = ("rgb", "depth", "thermal")
    after = rig.sets[before:]
    first_full = next(i for i, s in enumerate(after) if s.subset == full)  # rgb may restart a frame earlier
    assert sec(after[first_full].anchor.arrival.clock_ns) <= jumped_at + timeout
    assert all(s.subset == full for s in after[first_full:])
    assert after[-1].anchor.stamp_ns == ns(t - PERIOD - loop)
    assert rig.sync.jumps() == {"rgb": 1, "depth": 1, "thermal": 1}
    assert rig.sync.drops["stamp_not_increasing"] > 0
    assert rig.health(t) == dict.fromkeys(("rgb", "depth", "thermal"), Health.OK)
    assert rig.accounted() == rig.pushed


def test_one_frame_stamped_far_ahead_costs_its_sensor_at_most_modality_timeout():
    """A thermal frame stamped 1000 s ahead would make every good frame after it look old: the
    good frames' run shows the jump back, and thermal rejoins the sets without going stale."""
    timeout = 0.5
    rig = Rig(slop=0.02, modality_timeout=timeout)
    t = _steady(rig, ticks=10)
    rig.push("thermal", t + 1000.0, latency=-1000.0 + 0.01)
    outlier_at = t
    for _ in range(40):
        rig.tick(t)
        rig.poll(t + 0.011)
        assert rig.health(t + 0.011)["thermal"] is not Health.STALE
        t += PERIOD
    with_thermal = [s for s in rig.sets if "thermal" in s.frames and s.anchor.stamp_ns > ns(outlier_at)]
    assert with_thermal and sec(with_thermal[0].anchor.arrival.clock_ns) <= outlier_at + timeout
    rejoined = with_thermal[0].anchor.stamp_ns
    assert all("thermal" in s.frames for s in rig.sets if s.anchor.stamp_ns >= rejoined)
    assert rig.sync.jumps() == {"thermal": 1}
    assert rig.accounted() == rig.pushed


def test_resent_old_frames_are_no_clock_jump():
    """Duplicates and a burst of resent old frames (arriving together) are refused one by one;
    the stream goes on at its own stamps, with no jump counted."""
    rig = Rig(slop=0.02, modality_timeout=0.2)
    t = 0.0
    for _ in range(10):
        rig.tick(t)
        t += PERIOD
    for index in range(12):  # 12 old frames within 12 ms, stamps increasing among themselves
        old = index * 0.02
        assert rig.push("depth", old, latency=t - old + index * 0.001).value == "stamp_not_increasing"
    assert rig.push("depth", t - PERIOD, latency=0.02).value == "stamp_not_increasing"  # a duplicate
    for _ in range(10):
        rig.tick(t)
        t += PERIOD
    assert rig.sync.jumps() == {} and rig.sync.drops["stamp_not_increasing"] == 13
    assert rig.sets[-1].subset == ("rgb", "depth", "thermal")
    assert rig.accounted() == rig.pushed


def test_new_settings_apply_from_the_next_frame():
    """Frames 30 ms apart do not match within a 20 ms slop, and do within 50 ms once reconfigured."""
    rig = Rig(slop=0.02)
    rig.tick(0.0)
    rig.push("rgb", 0.1)
    rig.push("depth", 0.13)
    rig.push("thermal", 0.13)
    assert rig.sets[-1].subset == ("rgb",)
    rig.sync.reconfigure(SyncConfig(slop=0.05))
    rig.push("rgb", 0.2)
    rig.push("depth", 0.23)
    rig.push("thermal", 0.23)
    assert rig.sets[-1].subset == ("rgb", "depth", "thermal")


SIM_START, SIM_RESET = 20.0, 1.0  # s: a simulation's clock when the node starts, and after it resets


def _sim(rig: Rig, start: float, seconds: float, modalities=("rgb", "depth", "thermal"), probe=None) -> float:
    """Frames at 30 Hz stamped on the simulation clock, which the node's clock follows (use_sim_time),
    each followed by a poll on the node's timer, then ``probe(now)``. Returns the clock after the last frame."""
    t = start
    for _ in range(round(seconds / PERIOD)):
        rig.tick(t, modalities)
        rig.poll(t + 0.011)
        if probe is not None:
            probe(t + 0.011)
        t += PERIOD
    return t


def test_a_node_clock_that_goes_back_keeps_the_sets_going():
    """A simulation reset (``ros2 bag play --loop`` under use_sim_time): the node's clock and every stamp
    go back 29 s. Thermal never published, so the sets are rgb+depth; after the reset the sensors
    start afresh within modality_timeout, and from then on every rgb frame anchors a set."""
    timeout = SyncConfig().modality_timeout
    rig = Rig()
    _sim(rig, SIM_START, 10.0, ("rgb", "depth"))
    before, overflowed, ticks = len(rig.sets), rig.sync.drops["buffer_overflow"], round(20.0 / PERIOD)
    _sim(rig, SIM_RESET, 20.0, ("rgb", "depth"))  # on the new clock, past the old one's start
    after = rig.sets[before:]
    assert len(after) >= ticks - round(timeout / PERIOD) - 2  # all but those of the restart, and the last
    assert {s.subset for s in after} == {("rgb", "depth")}
    assert rig.sync.drops["buffer_overflow"] == overflowed  # no set waits for thermal
    assert rig.sync.jumps() == {"rgb": 1, "depth": 1}
    assert rig.accounted() == rig.pushed


def test_a_sensor_that_does_not_come_back_after_the_clock_went_back_is_stale():
    """After a simulation reset a thermal camera that publishes no more has sent no frame on the new
    clock: once modality_timeout has passed on it (the node learns of it with the first frame, within
    a frame period), thermal is STALE and out of the active subset, also when the new clock passes
    the old one's last frames. A probe racing a push, a few ms before its arrival, finds the sensor alive."""
    timeout = SyncConfig().modality_timeout
    rig = Rig()
    end = _sim(rig, SIM_START, 10.0)
    assert rig.health(end - PERIOD + 0.005)["thermal"] is Health.OK  # 5 ms before its last frame arrived
    seen: list[tuple[Health, tuple[str, ...]]] = []

    def probe(now: float) -> None:
        if now >= SIM_RESET + PERIOD + timeout:
            seen.append((rig.sync.health(ns(now))["thermal"], rig.sync.active(ns(now))))

    _sim(rig, SIM_RESET, 30.0, ("rgb", "depth"), probe)
    assert seen and set(seen) == {(Health.STALE, ("rgb", "depth"))}
    assert rig.accounted() == rig.pushed
