"""The ROS-free runtime: every set is published or counted, errors do not stop it, and the
quality gate leaves a degraded sensor out of the sets it is in."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import frame_inputs

from binseg_ros.backends.torch import TorchBackend
from binseg_ros.core.drops import DropReason
from binseg_ros.core.frame import Arrival, Frame
from binseg_ros.core.runtime import SegmentationRuntime
from binseg_ros.core.segmenter import Segmenter
from binseg_ros.core.sync import SyncConfig
from binseg_ros.datasets import load_frame
from binseg_ros.degrade import Degradation, apply
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
