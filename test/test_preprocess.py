"""Dataset reading and preprocessing on real MM5 frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import frame_inputs

from binseg_ros.core.frame import Arrival, Frame
from binseg_ros.core.preprocess import prepare_images
from binseg_ros.datasets import FolderLayout, list_ids, load_frame
from binseg_ros.errors import InputError


def test_list_ids_is_numeric_and_skips_gaps(mm5_root):
    ids = list_ids(mm5_root)
    numbers = [int(i) for i in ids]
    assert numbers == sorted(numbers) and len(ids) == 277
    assert numbers[-1] - numbers[0] + 1 > len(ids)  # the data README: ids have gaps


def test_load_frame_returns_sensor_units(mm5_root):
    frame = load_frame(mm5_root, list_ids(mm5_root)[0])
    assert frame["rgb"].shape == (480, 640, 3) and frame["rgb"].dtype == np.uint8
    bgr = cv2.imread(str(mm5_root / "RGB" / f"{list_ids(mm5_root)[0]}.png"))
    assert np.array_equal(frame["rgb"], bgr[..., ::-1])
    valid = frame["depth"][frame["depth"] > 0]
    assert frame["depth"].dtype == np.float32 and 0.2 < np.median(valid) < 3.0  # metres
    assert 17000 < np.median(frame["thermal"]) < 23000  # raw counts
    assert frame["label"].dtype == np.uint8 and frame["label"].max() > 0


def test_missing_dataset_and_image_are_clear(tmp_path, mm5_root):
    with pytest.raises(InputError, match="does not exist"):
        list_ids(tmp_path)
    with pytest.raises(InputError, match="cannot read image"):
        load_frame(mm5_root, "999999")
    assert FolderLayout().depth_scale_m == 0.001


def test_prepare_inputs_resizes_and_keeps_invalid_depth_exact(real_frames):
    frame = dict(frame_inputs(real_frames[0]))
    prepared = prepare_images(frame, (240, 320))
    assert {m: a.shape for m, a in prepared.items()} == {
        "rgb": (1, 3, 240, 320),
        "depth": (1, 1, 240, 320),
        "thermal": (1, 1, 240, 320),
    }
    assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in prepared.values())
    # Nearest-neighbour depth: every output value is an input value (no blended fake depths).
    assert np.isin(np.unique(prepared["depth"]), np.unique(frame["depth"])).all()
    assert np.allclose(prepared["rgb"][0].mean(axis=(1, 2)), frame["rgb"].reshape(-1, 3).mean(0), atol=0.5)
    same = prepare_images(frame, (480, 640))
    assert np.array_equal(same["rgb"][0].transpose(1, 2, 0), frame["rgb"].astype(np.float32))


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ({"rgb": np.zeros((48, 64), np.uint8)}, r"rgb: expected an HxWx3 frame, got shape \(48, 64\)"),
        ({"depth": np.zeros((48, 64, 3), np.float32)}, r"depth: expected an HxW frame"),
        ({"thermal": np.zeros((0, 64), np.float32)}, r"thermal: expected an HxW frame, got shape \(0, 64\)"),
    ],
)
def test_frames_of_the_wrong_shape_are_refused_when_made(frames, message):
    ((modality, data),) = frames.items()
    with pytest.raises(InputError, match=message):
        Frame(modality, 0, Arrival(0), data)
