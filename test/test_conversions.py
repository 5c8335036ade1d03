"""sensor_msgs/Image <-> numpy: encodings, padded rows, byte order, units, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from binseg_ros.core.drops import Repair
from binseg_ros.core.frame import Arrival
from binseg_ros.core.messages import ConversionError, ThermalUnits, image_view, to_frame
from binseg_ros.ros.conversions import to_image


def to_sensor_units(modality, msg, thermal=ThermalUnits()):
    """The message decoded as the runtime does, in sensor units, with its repair."""
    frame, repair = to_frame(modality, msg, Arrival(0), thermal)
    return frame.sensor_units(), repair


def message(array: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """A message with ``pad`` extra bytes per row, optionally big-endian."""
    wire = array.astype(array.dtype.newbyteorder(">")) if bigendian else array
    rows = wire.reshape(array.shape[0], -1).view(np.uint8)
    padded = np.zeros((rows.shape[0], rows.shape[1] + pad), np.uint8)
    padded[:, : rows.shape[1]] = rows
    msg = Image(
        header=Header(frame_id="cam"),
        height=array.shape[0],
        width=array.shape[1],
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=padded.shape[1],
    )
    msg.data = padded.tobytes()
    return msg


def test_round_trip_and_zero_copy_view():
    rgb = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    msg = to_image(rgb, "rgb8", Header(frame_id="cam"))
    assert (msg.step, msg.encoding, msg.header.frame_id) == (24, "rgb8", "cam")
    frame, repaired = to_frame("rgb", msg, Arrival(0))
    assert np.array_equal(frame.data, rgb) and repaired is None
    assert not frame.data.flags.owndata  # a view of the message buffer, no copy
    depth, _ = to_frame("depth", to_image(np.full((2, 3), 1500, np.uint16), "16UC1", Header()), Arrival(0))
    assert depth.data.dtype == np.uint16 and not depth.data.flags.owndata  # metres only after the downscale
    np.testing.assert_allclose(depth.sensor_units(), np.full((2, 3), 1.5), rtol=1e-6)


def test_padded_rows_and_big_endian_are_decoded():
    depth = np.arange(12, dtype=np.uint16).reshape(3, 4) * 250
    for bigendian in (False, True):
        for pad in (6, 1):  # a step that is no whole number of pixels is legal too
            view = image_view(message(depth, "16UC1", pad=pad, bigendian=bigendian))
            assert np.array_equal(view, depth)
            assert cv2.resize(view, (8, 6)).shape == (6, 8)  # OpenCV indexes it: rows start on whole elements


@pytest.mark.parametrize(
    ("modality", "encoding", "array", "expected"),
    [
        ("rgb", "bgr8", np.array([[[10, 20, 30]]], np.uint8), np.array([[[30, 20, 10]]], np.uint8)),
        ("rgb", "mono8", np.array([[7]], np.uint8), np.array([[[7, 7, 7]]], np.uint8)),
        ("rgb", "rgba8", np.array([[[10, 20, 30, 0]]], np.uint8), np.array([[[10, 20, 30]]], np.uint8)),
        ("rgb", "bgra8", np.array([[[10, 20, 30, 255]]], np.uint8), np.array([[[30, 20, 10]]], np.uint8)),
        ("depth", "16UC1", np.array([[1500, 0]], np.uint16), np.array([[1.5, 0.0]], np.float32)),
        ("depth", "32FC1", np.array([[1.25, 0.0]], np.float32), np.array([[1.25, 0.0]], np.float32)),
        ("thermal", "mono16", np.array([[18500]], np.uint16), np.array([[18500.0]], np.float32)),
    ],
)
def test_units(modality, encoding, array, expected):
    out, repaired = to_sensor_units(modality, message(array, encoding))
    np.testing.assert_allclose(out, expected)
    assert repaired is None


def test_nonfinite_depth_is_repaired_and_reported_thermal_gain_applies():
    depth = np.array([[np.nan, np.inf, 2.0]], np.float32)
    out, repaired = to_sensor_units("depth", message(depth, "32FC1"))
    assert out.tolist() == [[0.0, 0.0, 2.0]] and repaired is Repair.DEPTH_NONFINITE
    celsius = np.array([[20.0]], np.float32)
    out, _ = to_sensor_units("thermal", message(celsius, "32FC1"), ThermalUnits(gain=100.0, offset=16000.0))
    assert out.tolist() == [[18000.0]]
    with pytest.raises(ConversionError) as error:
        to_sensor_units("thermal", message(np.array([[np.nan]], np.float32), "32FC1"))
    assert error.value.reason == "thermal_nonfinite"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (dict(height=0), "zero_size"),
        (dict(encoding="yuv422"), "unknown_encoding"),
        (dict(step=3), "bad_step"),
        (dict(data=bytes(5)), "bad_data_length"),
    ],
)
def test_malformed_messages_name_their_reason(change, reason):
    msg = message(np.zeros((2, 4), np.uint8), "mono8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ConversionError) as error:
        image_view(msg)
    assert error.value.reason == reason


def test_encoding_not_accepted_for_the_modality():
    with pytest.raises(ConversionError, match="depth does not accept rgb8") as error:
        to_sensor_units("depth", message(np.zeros((2, 2, 3), np.uint8), "rgb8"))
    assert error.value.reason == "unsupported_encoding"
