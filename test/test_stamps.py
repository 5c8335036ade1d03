"""Stamps a driver gets wrong are dropped where a message becomes a frame, as ``bad_stamp``,
whatever its transport; diagnostics name the sensor while it keeps sending them, and count the
times a sensor's clock went back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Header

from binseg_ros.core.compressed import compressed_to_frame
from binseg_ros.core.drops import DropReason
from binseg_ros.core.frame import NS_PER_S, Arrival
from binseg_ros.core.gaps import Misses
from binseg_ros.core.messages import ConversionError, to_frame
from binseg_ros.core.runtime import RuntimeStatus
from binseg_ros.core.sync import Health
from binseg_ros.modalities import MODALITIES
from binseg_ros.ros.conversions import to_compressed_image, to_image
from binseg_ros.ros.diagnostics import build_diagnostics

CLOCK_S = 1_700_000_000  # the node clock when the images arrive
ARRIVAL = Arrival(CLOCK_S * NS_PER_S)
DEPTH = np.full((4, 6), 1500, np.uint16)
BAD = {
    "negative": Time(sec=-1, nanosec=0),
    "nanoseconds_of_a_second": Time(sec=CLOCK_S, nanosec=NS_PER_S),
    "zero": Time(sec=0, nanosec=0),
    "an_hour_ahead": Time(sec=CLOCK_S + 3600, nanosec=0),
}
GOOD = {
    "a_second_ahead": Time(sec=CLOCK_S + 1, nanosec=0),  # a host whose clock is still settling
    "an_hour_old": Time(sec=CLOCK_S - 3600, nanosec=999_999_999),  # a bag replayed on today's clock
}
TRANSPORTS = {
    "raw": lambda stamp: to_frame("depth", to_image(DEPTH, "16UC1", Header(stamp=stamp)), ARRIVAL),
    "compressedDepth": lambda stamp: compressed_to_frame(
        "depth", to_compressed_image(DEPTH, "16UC1", Header(stamp=stamp), "compressedDepth"), ARRIVAL
    ),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", BAD)
def test_a_bad_stamp_is_refused_whatever_the_transport(transport, kind):
    with pytest.raises(ConversionError) as refused:
        TRANSPORTS[transport](BAD[kind])
    assert refused.value.reason is DropReason.BAD_STAMP and refused.value.reason.scope.value == "frame"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", GOOD)
def test_a_stamp_near_the_clock_or_in_the_past_is_kept_exactly(transport, kind):
    frame, _ = TRANSPORTS[transport](GOOD[kind])
    assert frame.stamp_ns == GOOD[kind].sec * NS_PER_S + GOOD[kind].nanosec


def test_without_a_clock_a_zero_stamp_is_time_zero():
    """Sim time before its first /clock, or offline decoding: the clock cannot tell unset from zero."""
    frame, _ = to_frame("depth", to_image(DEPTH, "16UC1", Header()), Arrival(0))
    assert frame.stamp_ns == 0
    with pytest.raises(ConversionError, match="not a time"):
        to_frame("depth", to_image(DEPTH, "16UC1", Header(stamp=Time(sec=-1))), Arrival(0))


TOPICS = {m: f"/{m}/image" for m in MODALITIES}
HEALTHY = RuntimeStatus(
    health=dict.fromkeys(MODALITIES, Health.OK),
    active=MODALITIES,
    running=MODALITIES,
    degraded={},
    last_subset=MODALITIES,
    required_missing=(),
    frames_in=dict.fromkeys(MODALITIES, 150),
    input_rate=dict.fromkeys(MODALITIES, 15.0),
    output_rate=15.0,
    sets=150,
    frames_in_sets=450,
    masks=150,
    latency_p50=0.02,
    latency_p95=0.03,
    drops={},
    sanitized={},
    degraded_frames={},
    published={},
    mismatched={},
    misses=dict.fromkeys(MODALITIES, Misses()),
    recent_misses=dict.fromkeys(MODALITIES, Misses()),
    miss_span=2.0,
    bad_stamps=dict.fromkeys(MODALITIES, 0),
    recent_bad_stamps=dict.fromkeys(MODALITIES, 0),
    clock_jumps={},
)


def _statuses(status: RuntimeStatus) -> dict[str, DiagnosticStatus]:
    array = build_diagnostics(status, "/segment_node", Time(), MODALITIES, TOPICS, "onnxruntime")
    return {s.name.removeprefix("/segment_node: "): s for s in array.status}


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def _bad_thermal(total: int, recent: int, **changes) -> RuntimeStatus:
    return dataclasses.replace(
        HEALTHY,
        drops={"bad_stamp": total},
        bad_stamps={**HEALTHY.bad_stamps, "thermal": total},
        recent_bad_stamps={**HEALTHY.recent_bad_stamps, "thermal": recent},
        **changes,
    )


def test_a_sensor_sending_bad_stamps_is_warn_naming_it_until_they_stop():
    statuses = _statuses(_bad_thermal(total=7, recent=3))
    thermal = statuses["thermal"]
    assert thermal.level == DiagnosticStatus.WARN
    assert thermal.message.startswith("thermal bad stamps: 3"), thermal.message
    assert _values(thermal)["bad_stamps"] == "7"
    assert _values(statuses["segmentation"])["drops.bad_stamp"] == "7"
    assert all(statuses[m].level == DiagnosticStatus.OK for m in ("rgb", "depth"))
    assert statuses["segmentation"].level == DiagnosticStatus.OK  # its good frames are all used
    calm = _statuses(_bad_thermal(total=7, recent=0))["thermal"]
    assert (calm.level, calm.message) == (DiagnosticStatus.OK, "OK")


def test_bad_stamps_add_to_what_else_a_sensor_says():
    stale = _bad_thermal(total=40, recent=40, health={**HEALTHY.health, "thermal": Health.STALE})
    thermal = _statuses(stale)["thermal"]
    assert thermal.level == DiagnosticStatus.STALE  # the worse of the two
    assert thermal.message.startswith("STALE; thermal bad stamps: 40"), thermal.message
    degraded = _bad_thermal(total=2, recent=2, degraded={"thermal": "flat"})
    thermal = _statuses(degraded)["thermal"]
    assert thermal.level == DiagnosticStatus.WARN
    assert "thermal degraded: flat" in thermal.message and "thermal bad stamps: 2" in thermal.message


def test_clock_jumps_are_counted_per_sensor():
    statuses = _statuses(dataclasses.replace(HEALTHY, clock_jumps={"rgb": 2}))
    assert _values(statuses["segmentation"])["clock_jumps.rgb"] == "2"
    assert _values(statuses["rgb"])["clock_jumps"] == "2" and _values(statuses["depth"])["clock_jumps"] == "0"
    assert "clock_jumps.depth" not in _values(statuses["segmentation"])


def test_a_sensor_that_missed_sets_lately_is_warn_with_its_recent_miss_rate():
    """Between relapses a flapping sensor is back in the sets (OK to the synchroniser); a status
    taken then still says it keeps missing them."""
    flapping = dataclasses.replace(
        HEALTHY,
        misses={**HEALTHY.misses, "thermal": Misses(missed=300, expected=900)},
        recent_misses={**HEALTHY.recent_misses, "thermal": Misses(missed=28, expected=60)},
    )
    statuses = _statuses(flapping)
    thermal = statuses["thermal"]
    assert thermal.level == DiagnosticStatus.WARN
    assert thermal.message == "thermal missed 28 of 60 sets in the last 2 s (47%)"
    overall = statuses["segmentation"]
    assert overall.level == DiagnosticStatus.WARN
    assert overall.message == "running on rgb+depth+thermal (thermal missed 28 of 60 sets in the last 2 s (47%))"
    steady = dataclasses.replace(flapping, recent_misses=HEALTHY.recent_misses)  # its old misses are history
    assert _statuses(steady)["thermal"].level == DiagnosticStatus.OK
    assert _statuses(steady)["segmentation"].level == DiagnosticStatus.OK
