"""The ROS-free runtime: every set is published or counted, errors do not stop it."""

from __future__ import annotations

import numpy as np
from conftest import frame_inputs

from binseg_ros.backends.torch import TorchBackend
from binseg_ros.core.drops import DropReason
from binseg_ros.core.frame import Arrival, Frame
from binseg_ros.core.runtime import SegmentationRuntime
from binseg_ros.core.segmenter import Segmenter
from binseg_ros.core.sync import SyncConfig
from binseg_ros.ros.conversions import header, to_image


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
