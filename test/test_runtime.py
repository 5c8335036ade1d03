"""The ROS-free runtime: every set is published or counted, errors do not stop it, the
quality gate leaves a degraded sensor out of the sets it is in, a bad stamp or an odd-sized
frame costs only itself, and settings change while it runs."""

from __future__ import annotations

import gc
import logging
import random
import threading
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from conftest import frame_inputs
from std_msgs.msg import Header

from binseg_ros.backends.torch import TorchBackend
from binseg_ros.core.drops import DropReason, unaccounted
from binseg_ros.core.frame import NS_PER_S, Arrival, Frame
from binseg_ros.core.runtime import SegmentationRuntime
from binseg_ros.core.segmenter import Segmenter
from binseg_ros.core.sync import Health, SyncConfig
from binseg_ros.datasets import CAMERA_ENCODING, camera_frames, load_frame
from binseg_ros.degrade import Degradation, apply
from binseg_ros.errors import ConfigError
from binseg_ros.modalities import MODALITIES
from binseg_ros.ros.conversions import header, to_image
from binseg_ros.training.split import SPLITS, load_split


def test_inline_runtime_publishes_counts_and_survives_a_failing_publisher(calibrated_net, real_frames):
    frame = frame_inputs(real_frames[0])
    published = []

    def publish(result):
        if len(published) == 1 and not getattr(publish, "failed", False):
            publish.failed = True
            raise RuntimeError("publisher hiccup")
        published.append(result)

    runtime = SegmentationRuntime(
        Segmenter(TorchBackend(calibrated_net, (64, 96)), (64, 96)), SyncConfig(slop=0.01), publish, threaded=False
    )
    for index in range(4):
        t = index * 100_000_000
        for modality in ("rgb", "depth", "thermal"):
            runtime.offer(Frame(modality, t, Arrival(t), frame[modality]))
    runtime.reject("thermal", DropReason.BAD_STEP)
    nan_depth = to_image(np.full((480, 640), np.nan, np.float32), "32FC1", header(350_000_000, "depth"))
    assert runtime.ingest("depth", nan_depth, Arrival(310_000_000)) is None  # used after repair, counted
    status = runtime.status(300_000_000)
    assert len(published) == 3 and status.masks == 3 and status.sets == 4
    assert status.drops == {"inference_error": 1, "bad_step": 1}
    assert status.sanitized == {"depth_nonfinite": 1}
    assert status.frames_in == {"rgb": 4, "depth": 5, "thermal": 5}
    assert status.last_subset == ("rgb", "depth", "thermal")
    mask = published[-1].mask
    assert mask.shape == (480, 640) and set(np.unique(mask)) <= {0, 255}
    assert set(published[-1].timings) == {"register", "preprocess", "inference", "postprocess"}
    runtime.close()


@pytest.fixture(scope="module")
def held_out(mm5_root):
    """Three consecutive held-out frames: a scene the cameras keep watching."""
    ids = load_split(SPLITS / "mm5.yaml").held_out_ids()[:3]
    return [frame_inputs(load_frame(mm5_root, i)) for i in ids]


def _offer_set(runtime, frame, stamp_ns):
    for modality in ("rgb", "depth", "thermal"):
        runtime.offer(Frame(modality, stamp_ns, Arrival(stamp_ns), frame[modality]))


def _runtime(net, published, **kwargs):
    segmenter = Segmenter(TorchBackend(net, (64, 96)), (64, 96))
    return SegmentationRuntime(segmenter, SyncConfig(slop=0.01), published.append, threaded=False, **kwargs)


def test_a_black_rgb_is_left_out_and_the_set_segmented_with_depth_and_thermal(calibrated_net, held_out):
    published = []
    runtime = _runtime(calibrated_net, published)
    rng = np.random.default_rng(0)
    _offer_set(runtime, held_out[0], 0)
    _offer_set(runtime, {**held_out[1], "rgb": apply(Degradation("rgb", "black"), held_out[1]["rgb"], rng)}, 10**8)
    assert [result.subset for result in published] == [("rgb", "depth", "thermal"), ("depth", "thermal")]
    covered = published[1]
    assert covered.frameset.anchor.modality == "depth" and covered.mask.shape == (480, 640)
    status = runtime.status(10**8)
    assert status.degraded == {"rgb": "underexposed"} and status.degraded_frames == {"rgb.underexposed": 1}
    assert status.drops == {} and status.masks == status.sets == 2
    assert status.active == ("rgb", "depth", "thermal") and status.running == ("depth", "thermal")
    assert status.last_subset == ("depth", "thermal")
    # Every sensor blinded at once: no mask from nothing; the set is counted, and so is each frame.
    blind = {
        "rgb": np.zeros_like(held_out[2]["rgb"]),
        "depth": np.zeros_like(held_out[2]["depth"]),
        "thermal": np.full_like(held_out[2]["thermal"], held_out[2]["thermal"].mean()),
    }
    _offer_set(runtime, blind, 2 * 10**8)
    status = runtime.status(2 * 10**8)
    assert len(published) == 2 and status.sets == status.masks + status.drops["degraded"] == 3
    assert set(status.degraded_frames) == {"rgb.underexposed", "depth.blind", "thermal.flat"}
    assert status.running == ()


def test_without_the_gate_a_black_rgb_is_fed_to_the_engine(calibrated_net, held_out):
    published = []
    runtime = _runtime(calibrated_net, published, quality=None)
    _offer_set(runtime, {**held_out[0], "rgb": np.zeros_like(held_out[0]["rgb"])}, 0)
    assert [result.subset for result in published] == [("rgb", "depth", "thermal")]
    assert runtime.status(0).degraded_frames == {}


CLOCK_S = 1_000  # the node clock's seconds when the test's frames arrive
BAD_STAMPS = {  # (sec, nanosec) of a thermal image arriving at CLOCK_S + 0.25 s
    "negative": (-5, 0),
    "nanoseconds_of_a_second_or_more": (CLOCK_S, 1_500_000_000),
    "zero": (0, 0),
    "far_ahead": (CLOCK_S + 1_000, 0),
}


def _message(camera, modality, sec, nanosec=0):
    """``modality``'s image as its driver publishes it, stamped ``sec`` s + ``nanosec`` ns."""
    return to_image(camera[modality], CAMERA_ENCODING[modality], Header(stamp=Time(sec=sec, nanosec=nanosec)))


@pytest.mark.parametrize("kind", BAD_STAMPS)
def test_a_bad_stamp_is_counted_for_its_sensor_and_its_next_frames_are_used(calibrated_net, held_out, kind):
    camera = camera_frames(held_out[0])
    published = []
    runtime = _runtime(calibrated_net, published)

    def good_set(index):  # 10 Hz, each image stamped as it arrives
        t = CLOCK_S * NS_PER_S + index * 100_000_000
        for modality in MODALITIES:
            assert runtime.ingest(modality, _message(camera, modality, *divmod(t, NS_PER_S)), Arrival(t)) is None

    for index in range(3):
        good_set(index)
    bad = _message(camera, "thermal", *BAD_STAMPS[kind])
    error = runtime.ingest("thermal", bad, Arrival(CLOCK_S * NS_PER_S + 250_000_000))
    assert error is not None and error.reason is DropReason.BAD_STAMP
    for index in range(3, 8):
        good_set(index)
    assert [result.subset for result in published] == [MODALITIES] * 8
    status = runtime.status(CLOCK_S * NS_PER_S + 750_000_000)
    assert status.drops == {"bad_stamp": 1}
    assert status.bad_stamps == {"rgb": 0, "depth": 0, "thermal": 1} and status.recent_bad_stamps["thermal"] == 1
    assert status.health["thermal"] is Health.OK and status.clock_jumps == {}


def test_a_rejected_message_is_freed_at_once(calibrated_net, held_out):
    """A malformed image's error, kept by the caller to log, holds no cycle: nothing it refers
    to waits for the cyclic collector (a node at camera rate would hold each bad message, with
    its frames' locals, until a full collection)."""
    camera = camera_frames(held_out[0])
    runtime = _runtime(calibrated_net, [])
    bad = _message(camera, "thermal", CLOCK_S)
    bad.step = 1  # shorter than a row: bad_step
    reasons = []

    def on_image(msg):  # as an adapter's callback does: keeps the error in a local, logs it, returns
        error = runtime.ingest("thermal", msg, Arrival(CLOCK_S * NS_PER_S))
        reasons.append(None if error is None else error.reason)

    gc.collect()
    gc.disable()
    try:
        on_image(bad)
        del bad
        assert reasons == [DropReason.BAD_STEP] and gc.collect() == 0
    finally:
        gc.enable()


def test_an_odd_sized_rgb_frame_is_a_resolution_mismatch_not_a_lost_set(calibrated_net, held_out):
    """With depth required, an RGB frame at half size used to anchor a set, push out its depth and
    thermal as mismatched and lose the set as no_match; now it alone is dropped, under its reason."""
    published = []
    segmenter = Segmenter(TorchBackend(calibrated_net, (64, 96)), (64, 96))
    sync = SyncConfig(slop=0.01, required=("depth",))
    runtime = SegmentationRuntime(segmenter, sync, published.append, threaded=False)
    half = {**held_out[0], "rgb": np.ascontiguousarray(held_out[0]["rgb"][::2, ::2])}
    for index in range(5):
        _offer_set(runtime, half if index == 2 else held_out[0], index * 10**8)
    status = runtime.status(4 * 10**8)
    assert status.drops == {"resolution_mismatch": 1, "unmatched": 2}  # and its tick's depth and thermal
    assert status.mismatched == {"rgb": ((480, 640), (240, 320))}
    assert [result.subset for result in published] == [MODALITIES] * 4
    assert all(result.mask.shape == (480, 640) for result in published)


def test_reconfigure_applies_to_the_next_set_and_a_refusal_changes_nothing(calibrated_net, held_out):
    published = []
    runtime = _runtime(calibrated_net, published)
    _offer_set(runtime, held_out[0], 0)
    low, high = (float(q) for q in np.quantile(published[0].probability, [0.25, 0.75]))
    for index, threshold in enumerate((low, high), 1):
        runtime.reconfigure(threshold=threshold)
        _offer_set(runtime, held_out[0], index * 10**8)
        assert np.array_equal(published[-1].mask > 0, published[-1].probability > threshold)
    assert np.count_nonzero(published[1].mask) > np.count_nonzero(published[2].mask) > 0
    with pytest.raises(ConfigError, match="threshold must be within"):
        runtime.reconfigure(sync=SyncConfig(slop=0.05), threshold=float("nan"))
    with pytest.raises(ConfigError, match="required modalities"):
        runtime.reconfigure(sync=SyncConfig(slop=0.05, required=("rgb",)), threshold=0.5)
    assert runtime.sync.config.slop == 0.01 and runtime.segmenter.threshold == high


def test_a_set_still_waiting_when_the_runtime_closes_is_counted(calibrated_net, held_out):
    """Closing lets the set in flight finish and drops the one waiting behind it, and a set emitted
    after the close has no worker to take it: each is counted, so every set is a mask or a drop."""
    published, in_flight, release = [], threading.Event(), threading.Event()

    def publish(result):
        in_flight.set()
        release.wait(5)
        published.append(result)

    segmenter = Segmenter(TorchBackend(calibrated_net, (64, 96)), (64, 96))
    runtime = SegmentationRuntime(segmenter, SyncConfig(slop=0.01), publish)  # threaded, as in the node
    _offer_set(runtime, held_out[0], 0)
    assert in_flight.wait(5)
    _offer_set(runtime, held_out[0], 10**8)  # waits: the worker is busy with the first
    closing = threading.Thread(target=runtime.close)
    closing.start()
    deadline = time.monotonic() + 2.0  # let the close begin before the set in flight is done
    while not runtime.status(10**8).drops.get("shutdown") and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    closing.join(10)
    _offer_set(runtime, held_out[0], 2 * 10**8)
    status = runtime.status(2 * 10**8)
    assert len(published) == status.masks == 1 and status.sets == 3
    assert status.drops == {"shutdown": 2}
    frames_in = sum(status.frames_in.values())
    assert unaccounted(frames_in, status.frames_in_sets, status.sets, status.masks, status.drops) == (0, 0)


def ns(seconds: float) -> int:
    return round(seconds * NS_PER_S)


class _Blind:
    """A backend that sees nothing: enough where only the timing of the sets matters."""

    name = "blind"

    def run(self, inputs):
        return np.zeros((16, 16), np.float32)


def _cameras(seconds: float, rates: dict[str, float], jitter: float) -> list[tuple[float, str]]:
    """(capture time, modality) of each camera at its rate, each interval off by up to ``jitter`` s."""
    rng = random.Random(1)
    events = []
    for modality, rate in rates.items():
        t = 0.0
        while t < seconds:
            events.append((t, modality))
            t += 1 / rate + rng.uniform(-jitter, jitter)
    return sorted(events)


def test_a_sensor_too_slow_for_modality_timeout_is_warned_about_once(caplog):
    """Thermal at 2 Hz beside 30 Hz RGB and 5 Hz depth, at the default modality_timeout of 0.5 s: thermal's
    frames come about as far apart as the timeout, so it keeps going STALE between them. The runtime says so
    once, naming it and the parameter, not the cameras that stay OK. At 0.8 s it goes STALE when one of its
    frames is lost, and is warned about again; at 1.2 s it rides out a lost frame, and is not."""
    images = {"rgb": np.zeros((4, 6, 3), np.uint8), "depth": np.zeros((4, 6), np.float32)}
    images["thermal"] = images["depth"]
    runtime = SegmentationRuntime(
        Segmenter(_Blind(), (16, 16)), SyncConfig(), lambda _r: None, threaded=False, quality=None
    )

    def run(start: float, seconds: float, lost: float | None = None) -> tuple[list[str], set[str]]:
        """``seconds`` of frames from ``start``, less thermal's first at or after ``lost`` s into them, if
        given; the warnings, and the sensors seen STALE after the first second."""
        caplog.clear()
        stale: set[str] = set()
        events = _cameras(seconds, {"rgb": 30.0, "depth": 5.0, "thermal": 2.0}, 0.01)
        lose = None if lost is None else next(e for e in events if e[1] == "thermal" and e[0] >= lost)
        for capture, modality in (e for e in events if e != lose):
            now = start + capture + 0.005
            runtime.offer(Frame(modality, ns(now - 0.005), Arrival(ns(now)), images[modality]))
            runtime.poll(ns(now))
            if capture >= 1.0:
                stale.update(m for m, health in runtime.status(ns(now)).health.items() if health is Health.STALE)
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING], stale

    with caplog.at_level(logging.WARNING, logger="binseg_ros.core.runtime"):
        warnings, stale = run(0.0, 20.0)
        assert stale == {"thermal"}  # it flaps: the timeout does not cover it
        assert len(warnings) == 1 and "thermal" in warnings[0] and "modality_timeout" in warnings[0]
        runtime.reconfigure(sync=SyncConfig(modality_timeout=0.8))
        warnings, stale = run(20.0, 5.0, lost=3.0)
        assert stale == {"thermal"} and len(warnings) == 1 and "thermal" in warnings[0]
        runtime.reconfigure(sync=SyncConfig(modality_timeout=1.2))
        assert run(25.0, 5.0, lost=3.0) == ([], set())
