"""``sensor_msgs/Image`` ↔ numpy, with every malformed message named by a drop reason.

ROS-free: a message is anything with the ``sensor_msgs/Image`` fields (``header``,
``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``), so rclpy messages
in the node and ``rosbags`` messages in the bag tools go through the same code, both ways.

Decoding makes no copy where the encoding allows (rgb8, 16UC1, mono16, 32FC1 in host byte
order): the frame is a view of the message buffer in its wire type, and the conversion to
sensor units (a scale and an offset) waits for preprocessing, after the downscale.
``sensor_msgs/CompressedImage`` is decoded in :mod:`binseg_ros.core.compressed`, which hands
its pixels to :func:`frame_from_pixels` here: both transports share the units and the stamp
check (:func:`frame_stamp`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from binseg_ros.core.drops import DropReason, Repair
from binseg_ros.core.frame import NS_PER_S, Arrival, Frame
from binseg_ros.errors import InputError


class ConversionError(InputError):
    """A sensor message that cannot become a frame; ``reason`` is the drop counter it goes to."""

    def __init__(self, reason: DropReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Stamp(Protocol):
    sec: int
    nanosec: int


class Header(Protocol):
    stamp: Stamp
    frame_id: str


class ImageMessage(Protocol):
    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: Any  # bytes-like: array('B'), bytes or a uint8 ndarray


ENCODINGS: dict[str, tuple[np.dtype[Any], int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}
ACCEPTED: dict[str, frozenset[str]] = {
    "rgb": frozenset({"rgb8", "bgr8", "rgba8", "bgra8", "mono8"}),
    "depth": frozenset({"16UC1", "32FC1"}),
    "thermal": frozenset({"mono8", "mono16", "16UC1", "32FC1"}),
}
DEPTH_MM = 0.001  # metres per count of 16UC1 depth
MAX_STAMP_LEAD_NS = 10 * NS_PER_S
"""How far ahead of its arrival clock a stamp may be. A capture cannot come after its own
arrival, and hosts kept in step by NTP or PTP differ by milliseconds, so a stamp further ahead
is a driver's fault (a wrong clock base, a corrupt header); let through, it would become the
modality's last stamp, and every good frame after it would be older. Ten seconds leaves room for
a host whose clock is still settling; an unsynchronised host further ahead has all its images
counted as ``bad_stamp``, which diagnostics show."""


@dataclass(frozen=True)
class ThermalUnits:
    """Raw thermal counts = value × ``gain`` + ``offset`` (maps mono8 or °C images to counts)."""

    gain: float = 1.0
    offset: float = 0.0


def stamp_ns(header: Header) -> int:
    """A header's stamp in integer nanoseconds: the exact key masks and ground truth share."""
    return int(header.stamp.sec) * NS_PER_S + int(header.stamp.nanosec)


def frame_stamp(header: Header, arrival: Arrival) -> int:
    """``header``'s stamp (ns), checked once, where a message becomes a frame: a stamp that is
    no time (negative seconds, nanoseconds of a second or more), zero (a header the driver never
    stamped) or more than :data:`MAX_STAMP_LEAD_NS` ahead of ``arrival`` would make the
    synchroniser refuse that sensor's good frames after it (or crash the output's header). A clock
    at zero (sim time before its first ``/clock``, or a caller that has none) judges neither
    zero nor lead: it cannot tell an unset stamp from its own time.

    Raises:
        ConversionError: ``bad_stamp``.
    """
    sec, nanosec = int(header.stamp.sec), int(header.stamp.nanosec)
    if sec < 0 or not 0 <= nanosec < NS_PER_S:
        raise ConversionError(DropReason.BAD_STAMP, f"stamp {sec} s + {nanosec} ns is not a time")
    stamp, clock = stamp_ns(header), arrival.clock_ns
    if clock and stamp == 0:
        raise ConversionError(DropReason.BAD_STAMP, "stamp is zero: the header was never stamped")
    if clock and stamp - clock > MAX_STAMP_LEAD_NS:
        raise ConversionError(DropReason.BAD_STAMP, f"stamp is {(stamp - clock) / NS_PER_S:.1f} s ahead of the clock")
    return stamp


def pixel_layout(encoding: str) -> tuple[np.dtype[Any], int]:
    """(dtype, channels) of ``encoding``; an encoding outside :data:`ENCODINGS` is ``unknown_encoding``."""
    if encoding not in ENCODINGS:
        raise ConversionError(DropReason.UNKNOWN_ENCODING, f"encoding {encoding!r} is not supported")
    return ENCODINGS[encoding]


def image_view(msg: ImageMessage) -> np.ndarray:
    """``[H, W]`` or ``[H, W, C]`` view of the message data, validated against its header."""
    if msg.height == 0 or msg.width == 0:
        raise ConversionError(DropReason.ZERO_SIZE, f"image is {msg.width}x{msg.height}")
    dtype, channels = pixel_layout(msg.encoding)
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ConversionError(
            DropReason.BAD_STEP, f"step {msg.step} < {row_bytes} bytes for {msg.width} px of {msg.encoding}"
        )
    if len(msg.data) != msg.step * msg.height:
        raise ConversionError(
            DropReason.BAD_DATA_LENGTH, f"data has {len(msg.data)} bytes, step x height = {msg.step * msg.height}"
        )
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :row_bytes]
    wire = dtype.newbyteorder(">") if msg.is_bigendian else dtype
    view = rows.view(wire)
    if (msg.is_bigendian and dtype.itemsize > 1) or msg.step % dtype.itemsize:
        # Swapped to host order, or rows that do not start on a whole element (a legal step that
        # OpenCV refuses to index): one packed copy.
        view = view.astype(dtype)
    return view.reshape(msg.height, msg.width, channels) if channels > 1 else view.reshape(msg.height, msg.width)


def to_frame(
    modality: str, msg: ImageMessage, arrival: Arrival, thermal: ThermalUnits = ThermalUnits()
) -> tuple[Frame, Repair | None]:
    """The message as a :class:`Frame`, and the repair it needed, if any.

    Raises:
        ConversionError: malformed message, or an encoding this modality does not accept.
    """
    return frame_from_pixels(modality, msg.encoding, image_view(msg), msg.header, arrival, thermal)


def frame_from_pixels(
    modality: str,
    encoding: str,
    pixels: np.ndarray,
    header: Header,
    arrival: Arrival,
    thermal: ThermalUnits = ThermalUnits(),
) -> tuple[Frame, Repair | None]:
    """Pixels in ``encoding``'s layout (from a raw or a compressed message) as a :class:`Frame`.

    The one place the accepted encodings and the sensor units are applied, whatever the transport.

    Raises:
        ConversionError: an encoding this modality does not accept; thermal NaN or inf; a bad stamp.
    """
    if encoding not in ACCEPTED[modality]:
        raise ConversionError(
            DropReason.UNSUPPORTED_ENCODING,
            f"{modality} does not accept {encoding}; expected one of {', '.join(sorted(ACCEPTED[modality]))}",
        )
    stamp = frame_stamp(header, arrival)
    data, scale, offset, repair = _units(modality, encoding, pixels, thermal)
    return Frame(modality, stamp, arrival, data, str(header.frame_id), scale, offset), repair


_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,  # alpha dropped: the network sees colour only
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}


def _units(
    modality: str, encoding: str, view: np.ndarray, thermal: ThermalUnits
) -> tuple[np.ndarray, float, float, Repair | None]:
    """``(data, scale, offset, repair)``: the image and how to reach sensor units from it."""
    if modality == "rgb":
        conversion = _TO_RGB.get(encoding)
        return (view if conversion is None else cv2.cvtColor(view, conversion)), 1.0, 0.0, None
    if modality == "depth":
        if encoding == "16UC1":
            return view, DEPTH_MM, 0.0, None
        finite = np.isfinite(view)
        if finite.all():
            return view, 1.0, 0.0, None
        return np.where(finite, view, np.float32(0.0)), 1.0, 0.0, Repair.DEPTH_NONFINITE
    if encoding == "32FC1" and not np.isfinite(view).all():
        raise ConversionError(DropReason.THERMAL_NONFINITE, "thermal image contains NaN or inf")
    return view, thermal.gain, thermal.offset, None


def image_fields(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """The ``sensor_msgs/Image`` fields (all but ``header``) holding a copy of ``array``:
    little-endian, packed rows. The node and the bag writer build their messages from it."""
    dtype, channels = ENCODINGS[encoding]
    array = np.ascontiguousarray(array, dtype=dtype)
    return {
        "height": array.shape[0],
        "width": array.shape[1],
        "encoding": encoding,
        "is_bigendian": 0,
        "step": array.shape[1] * channels * dtype.itemsize,
        "data": array.view(np.uint8).reshape(-1),
    }
