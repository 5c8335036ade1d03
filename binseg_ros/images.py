"""Image messages → numpy in sensor units, with every malformed message named by a reason.

ROS-free: a message is anything with the ``sensor_msgs/Image`` fields (``height``, ``width``,
``encoding``, ``is_bigendian``, ``step``, ``data``), so rclpy messages in the node and
``rosbags`` messages in the offline evaluator go through the same code. Views share the
message buffer where the encoding allows (rgb8, 32FC1), so a 640×480 frame costs no copy
until preprocessing resizes it. The reasons are the keys of the drop counters in
``/diagnostics`` and in evaluation reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from binseg_ros.sync import Frame

if TYPE_CHECKING:
    from binseg_ros.runtime import SegmentationRuntime


class ImageMessage(Protocol):
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: Any  # bytes-like: array('B'), bytes or a uint8 ndarray


ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}
ACCEPTED: dict[str, frozenset[str]] = {
    "rgb": frozenset({"rgb8", "bgr8", "mono8"}),
    "depth": frozenset({"16UC1", "32FC1"}),
    "thermal": frozenset({"mono8", "mono16", "16UC1", "32FC1"}),
}


class ConversionError(ValueError):
    """A message that cannot become a frame; ``reason`` is its counter key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def image_view(msg: ImageMessage) -> np.ndarray:
    """``[H, W]`` or ``[H, W, C]`` view of the message data, validated against its header."""
    if msg.height == 0 or msg.width == 0:
        raise ConversionError("zero_size", f"image is {msg.width}x{msg.height}")
    if msg.encoding not in ENCODINGS:
        raise ConversionError("unknown_encoding", f"encoding {msg.encoding!r} is not supported")
    dtype, channels = ENCODINGS[msg.encoding]
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ConversionError("bad_step", f"step {msg.step} < {row_bytes} bytes for {msg.width} px of {msg.encoding}")
    if len(msg.data) != msg.step * msg.height:
        raise ConversionError(
            "bad_data_length", f"data has {len(msg.data)} bytes, step x height = {msg.step * msg.height}"
        )
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :row_bytes]
    wire = dtype.newbyteorder(">") if msg.is_bigendian else dtype
    view = rows.view(wire)
    if msg.is_bigendian and dtype.itemsize > 1:
        view = view.astype(dtype)
    return view.reshape(msg.height, msg.width, channels) if channels > 1 else view.reshape(msg.height, msg.width)


def to_sensor_units(
    modality: str, msg: ImageMessage, thermal_gain: float = 1.0, thermal_offset: float = 0.0
) -> tuple[np.ndarray, str | None]:
    """Convert a message to the units the network takes (see model/normalization.py).

    Returns the array and, if it had to be repaired, the repair's counter key
    (``depth_nonfinite``: NaN/inf depth, which ROS uses for "no return", set to invalid 0).

    Raises:
        ConversionError: malformed message, or an encoding this modality does not accept.
    """
    view = image_view(msg)
    if msg.encoding not in ACCEPTED[modality]:
        raise ConversionError(
            "unsupported_encoding",
            f"{modality} does not accept {msg.encoding}; expected one of {', '.join(sorted(ACCEPTED[modality]))}",
        )
    if modality == "rgb":
        if msg.encoding == "bgr8":
            return cv2.cvtColor(view, cv2.COLOR_BGR2RGB), None
        if msg.encoding == "mono8":
            return cv2.cvtColor(view, cv2.COLOR_GRAY2RGB), None
        return view, None
    if modality == "depth":
        if msg.encoding == "16UC1":
            return view.astype(np.float32) * np.float32(0.001), None
        finite = np.isfinite(view)
        if finite.all():
            return view, None
        return np.where(finite, view, np.float32(0.0)), "depth_nonfinite"
    counts = view.astype(np.float32) * np.float32(thermal_gain) + np.float32(thermal_offset)
    if msg.encoding == "32FC1" and not np.isfinite(counts).all():
        raise ConversionError("thermal_nonfinite", "thermal image contains NaN or inf")
    return counts, None


def ingest(runtime: SegmentationRuntime, modality: str, msg: ImageMessage, stamp: float, arrival: float,
           thermal_gain: float = 1.0, thermal_offset: float = 0.0, header: Any = None) -> ConversionError | None:
    """Convert ``msg`` and offer it to a :class:`~binseg_ros.runtime.SegmentationRuntime`.

    A malformed message is counted under its reason and returned, for the caller to log.
    """
    try:
        data, repaired = to_sensor_units(modality, msg, thermal_gain, thermal_offset)
    except ConversionError as exc:
        runtime.reject(modality, exc.reason)
        return exc
    if repaired:
        runtime.note_sanitized(repaired)
    runtime.offer(Frame(modality, stamp, arrival, data, header))
    return None
