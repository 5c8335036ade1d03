"""``sensor_msgs/CompressedImage`` ↔ numpy, as image_transport's ``compressed`` and
``compressedDepth`` plugins (ros-perception/image_transport_plugins) write and read it.

ROS-free, like :mod:`binseg_ros.core.messages`: a message is anything with ``header``,
``format`` and ``data``. The ``format`` string says everything, so the runtime needs no topic
or transport to decode (the part before ``;`` is the original encoding):

- ``compressed`` (``compressed_publisher.cpp`` / ``compressed_subscriber.cpp``):
  ``rgb8; jpeg compressed bgr8`` (colour is stored BGR), ``mono8; jpeg compressed mono8``,
  ``bgr8; png compressed bgr8``, ``bgra8; jpeg compressed bgr8`` (the alpha is dropped before
  compressing), ``mono16; png compressed `` (grey PNGs name no target), and
  the legacy bare ``jpeg`` / ``png`` (the encoding follows from the decoded image). A 16-bit
  encoding sent as JPEG decodes 8-bit and is scaled by 256, as the subscriber does.
- ``compressedDepth`` (``codec.cpp``, ``compression_common.h``, ``rvl_codec.cpp``): a
  12-byte ``ConfigHeader`` (int32 format, ``INV_DEPTH`` = 0; float32 ``depthParam[2]``), then
  a 16-bit PNG, or for ``rvl`` uint32 width, uint32 height and an RVL stream
  (:mod:`binseg_ros.core.rvl`). ``16UC1`` stores the depth itself (values above
  ``depth_max`` x 1000 zeroed). ``32FC1`` stores inverse depth ``q = A / d + B`` (truncated,
  0 = invalid) with A = z0 (z0 + 1), B = 1 - A / depth_max from the header, so the decoded
  depth is ``A / (q - B)`` and NaN where q = 0. Humble writes ``16UC1; compressedDepth``
  (PNG implied); later releases ``16UC1; compressedDepth png`` or ``... rvl``.

A payload that does not decode, a format outside these, or pixels that disagree with their
encoding is :attr:`DropReason.DECODE_ERROR`; nothing here raises anything else on bad input.
:func:`encode` writes exactly what the plugins publish (their default parameters), for
``binseg make-bag --compressed`` and the tests.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

import cv2
import numpy as np

from binseg_ros.core import rvl
from binseg_ros.core.drops import DropReason, Repair
from binseg_ros.core.frame import Arrival, Frame
from binseg_ros.core.messages import ConversionError, Header, ThermalUnits, frame_from_pixels, pixel_layout
from binseg_ros.errors import InputError

TRANSPORTS = ("raw", "compressed", "compressedDepth")  # image_transport's names, and the topic suffixes
DEPTH_HEADER = struct.Struct("<iff")  # ConfigHeader: compressionFormat format; float depthParam[2]
INV_DEPTH = 0  # the only compressionFormat the publisher writes
DEPTH_ENCODINGS = frozenset({"16UC1", "mono16", "32FC1"})
COLOUR = frozenset({"rgb8", "bgr8"})
ALPHA = {"rgba8": cv2.COLOR_RGBA2BGR, "bgra8": cv2.COLOR_BGRA2BGR}
"""Colour with alpha: the plugin compresses it as bgr8 (neither codec keeps the alpha channel)."""
# The plugins' parameter defaults: jpeg_quality, png_level, depth_max (m), depth_quantization (m).
JPEG_QUALITY, PNG_LEVEL, DEPTH_MAX, DEPTH_QUANTIZATION = 95, 3, 10.0, 100.0
_DECODE_FAILURES = (cv2.error, ValueError, struct.error, OverflowError)


class CompressedMessage(Protocol):
    header: Header
    format: str
    data: Any  # bytes-like: array('B'), bytes or a uint8 ndarray


def is_compressed(msg: object) -> TypeGuard[CompressedMessage]:
    """A ``sensor_msgs/CompressedImage`` (it has ``format``; ``sensor_msgs/Image`` has ``encoding``)."""
    return hasattr(msg, "format")


def transport_topic(base: str, transport: str) -> str:
    """The topic image_transport publishes ``base`` on with ``transport``: ``base/compressed`` etc."""
    if transport not in TRANSPORTS:
        raise InputError(f"transport {transport!r}: expected one of {', '.join(TRANSPORTS)}")
    return base if transport == "raw" else f"{base}/{transport}"


def split_transport_topic(topic: str) -> tuple[str, str]:
    """(base topic, transport) of a topic named as image_transport names them."""
    base, _, last = topic.rpartition("/")
    return (base, last) if base and last in TRANSPORTS[1:] else (topic, "raw")


@dataclass(frozen=True)
class Format:
    """A parsed ``format`` string."""

    encoding: str | None  # the original encoding; None for the bare legacy ``jpeg`` / ``png``
    transport: str  # compressed | compressedDepth
    codec: str  # jpeg | png | rvl
    bgr: bool  # colour pixels stored BGR (``... compressed bgr8``)


def parse_format(text: str) -> Format:
    """The encoding, transport and codec a ``format`` string names (see the module docstring)."""
    encoding, separator, tail = text.partition(";")
    if not separator and text.strip().lower() in ("jpeg", "jpg", "png"):
        return Format(None, "compressed", "png" if text.strip().lower() == "png" else "jpeg", bgr=True)
    if separator and "compressedDepth" in tail:
        codec = _depth_codec(tail)
        if codec is not None:
            return Format(encoding.strip(), "compressedDepth", codec, bgr=False)
    elif separator and ("jpeg compressed" in tail or "png compressed" in tail):
        codec = "jpeg" if "jpeg compressed" in tail else "png"
        return Format(encoding.strip(), "compressed", codec, bgr="compressed bgr" in tail)
    raise ConversionError(
        DropReason.DECODE_ERROR,
        f"format {text!r} is not one this node decodes: expected e.g. 'rgb8; jpeg compressed bgr8', "
        "'mono16; png compressed', '16UC1; compressedDepth png' or '... rvl'",
    )


def _depth_codec(tail: str) -> str | None:
    """png, rvl, or None for a codec the decoder does not know (the plugin's order of tests)."""
    if "compressedDepth png" in tail:
        return "png"
    if "compressedDepth rvl" in tail:
        return "rvl"
    return "png" if "compressedDepth " not in tail else None  # Humble: "16UC1; compressedDepth"


def compressed_to_frame(
    modality: str, msg: CompressedMessage, arrival: Arrival, thermal: ThermalUnits = ThermalUnits()
) -> tuple[Frame, Repair | None]:
    """The message as a :class:`Frame` (in the units a raw message of its encoding gives), and its repair.

    Raises:
        ConversionError: ``decode_error``, or the reasons a raw image of that encoding would get.
    """
    encoding, pixels = decode(msg)
    return frame_from_pixels(modality, encoding, pixels, msg.header, arrival, thermal)


def decode(msg: CompressedMessage) -> tuple[str, np.ndarray]:
    """(encoding, pixels): the arrays a raw ``sensor_msgs/Image`` of that encoding holds.

    Raises:
        ConversionError: under ``decode_error``; ``unknown_encoding`` for an encoding no raw image has.
    """
    fmt = parse_format(str(msg.format))
    if fmt.encoding is not None:
        pixel_layout(fmt.encoding)
    try:
        data = np.frombuffer(msg.data, np.uint8)
        if data.size == 0:
            raise ConversionError(DropReason.DECODE_ERROR, f"{msg.format!r} message with no data")
        return _decode_depth(fmt, data) if fmt.transport == "compressedDepth" else _decode_image(fmt, data)
    except ConversionError:
        raise
    except _DECODE_FAILURES as exc:  # whatever a corrupt payload makes the codecs raise
        raise ConversionError(DropReason.DECODE_ERROR, f"{msg.format!r} payload does not decode: {exc}") from exc


def _decode_image(fmt: Format, data: np.ndarray) -> tuple[str, np.ndarray]:
    image = _imdecode(data, fmt.codec)
    encoding = fmt.encoding or _bare_encoding(image)
    if encoding in ALPHA:  # what was compressed is the colour without its alpha
        encoding = "bgr8" if fmt.bgr else "rgb8"
    if encoding in COLOUR and image.ndim == 3 and image.shape[2] == 3:
        if fmt.bgr and encoding == "rgb8":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        elif not fmt.bgr and encoding == "bgr8":
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif fmt.codec == "jpeg" and image.dtype == np.uint8 and pixel_layout(encoding)[0].itemsize == 2:
        image = image.astype(np.uint16) << 8  # the subscriber's convertTo(CV_16U, 256)
    return encoding, _checked(image, encoding, fmt)


def _decode_depth(fmt: Format, data: np.ndarray) -> tuple[str, np.ndarray]:
    encoding = str(fmt.encoding)
    if encoding not in DEPTH_ENCODINGS:
        raise ConversionError(DropReason.DECODE_ERROR, f"compressedDepth carries 16UC1 or 32FC1 images, not {encoding}")
    if data.size <= DEPTH_HEADER.size:
        raise ConversionError(DropReason.DECODE_ERROR, f"compressedDepth message of {data.size} bytes: header only")
    kind, quant_a, quant_b = DEPTH_HEADER.unpack(data[: DEPTH_HEADER.size].tobytes())
    if kind != INV_DEPTH:
        raise ConversionError(DropReason.DECODE_ERROR, f"compressedDepth header names format {kind}, not INV_DEPTH")
    body = data[DEPTH_HEADER.size :]
    stored = _rvl_pixels(body) if fmt.codec == "rvl" else _imdecode(body, "compressedDepth png")
    stored = _checked(stored, "16UC1", fmt)
    if encoding != "32FC1":
        return encoding, stored
    if not (math.isfinite(quant_a) and math.isfinite(quant_b)) or quant_a == 0:
        raise ConversionError(
            DropReason.DECODE_ERROR, f"compressedDepth header has no depth scale ({quant_a}, {quant_b})"
        )
    return encoding, _inverse_depth(stored, quant_a, quant_b)


def _rvl_pixels(body: np.ndarray) -> np.ndarray:
    if body.size < 8:
        raise ConversionError(DropReason.DECODE_ERROR, "compressedDepth rvl: no room for its width and height")
    cols, rows = struct.unpack("<II", body[:8].tobytes())
    try:
        return rvl.decode(body[8:], rows * cols).reshape(rows, cols)
    except rvl.RvlError as exc:
        raise ConversionError(DropReason.DECODE_ERROR, f"compressedDepth rvl {cols}x{rows}: {exc}") from exc


def _inverse_depth(stored: np.ndarray, quant_a: float, quant_b: float) -> np.ndarray:
    """Depth in metres from quantised inverse depth, in float32 like the plugin; NaN where 0."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        depth = np.float32(quant_a) / (stored.astype(np.float32) - np.float32(quant_b))
    depth[stored == 0] = np.nan
    return depth


def _imdecode(data: np.ndarray, what: str) -> np.ndarray:
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ConversionError(DropReason.DECODE_ERROR, f"{what} payload of {data.size} bytes does not decode")
    return image


def _bare_encoding(image: np.ndarray) -> str:
    """The encoding of an image sent with a bare ``jpeg`` / ``png`` format."""
    channels = image.shape[2] if image.ndim == 3 else 1
    found = {(np.uint8, 1): "mono8", (np.uint8, 3): "bgr8", (np.uint16, 1): "mono16"}.get((image.dtype.type, channels))
    if found is None:
        raise ConversionError(DropReason.DECODE_ERROR, f"{channels}-channel {image.dtype} image in a bare format")
    return found


def _checked(image: np.ndarray, encoding: str, fmt: Format) -> np.ndarray:
    """``image`` if its dtype and channels are ``encoding``'s; else it was not what the format says."""
    dtype, channels = pixel_layout(encoding)
    shape_ok = image.ndim == 2 if channels == 1 else image.ndim == 3 and image.shape[2] == channels
    if image.dtype != dtype or not shape_ok:
        raise ConversionError(
            DropReason.DECODE_ERROR,
            f"{fmt.transport} {fmt.codec} decoded to a {'x'.join(map(str, image.shape))} {image.dtype} "
            f"image, not {encoding}",
        )
    return image


def encode(
    array: np.ndarray,
    encoding: str,
    transport: str = "compressed",
    codec: str | None = None,
    *,
    jpeg_quality: int = JPEG_QUALITY,
    png_level: int = PNG_LEVEL,
    depth_max: float = DEPTH_MAX,
    depth_quantization: float = DEPTH_QUANTIZATION,
) -> tuple[str, bytes]:
    """(format, data) of the ``CompressedImage`` image_transport publishes for ``array`` in ``encoding``.

    ``codec`` defaults to jpeg for 8-bit and png for 16-bit images on ``compressed`` (the
    plugin's default is jpeg, which would keep 8 of 16 bits), png on ``compressedDepth``.

    Raises:
        InputError: a transport, codec or encoding the plugin would refuse.
    """
    dtype, _ = pixel_layout(encoding)
    pixels = np.ascontiguousarray(array, dtype)
    if transport == "compressed":
        return _encode_image(
            pixels, encoding, codec or ("jpeg" if dtype.itemsize == 1 else "png"), jpeg_quality, png_level
        )
    if transport == "compressedDepth":
        return _encode_depth(pixels, encoding, codec or "png", png_level, depth_max, depth_quantization)
    raise InputError(f"transport {transport!r}: expected compressed or compressedDepth")


def _encode_image(pixels: np.ndarray, encoding: str, codec: str, quality: int, level: int) -> tuple[str, bytes]:
    if codec not in ("jpeg", "png"):
        raise InputError(f"compressed codec {codec!r}: expected jpeg or png")
    if pixels.dtype.itemsize > (1 if codec == "jpeg" else 2):
        raise InputError(f"{codec} cannot carry {encoding} without losing bits")
    conversion = cv2.COLOR_RGB2BGR if encoding == "rgb8" else ALPHA.get(encoding)
    image = pixels if conversion is None else cv2.cvtColor(pixels, conversion)
    target = "bgr8" if encoding in COLOUR or encoding in ALPHA else "mono8" if codec == "jpeg" else ""
    if codec == "jpeg":
        return f"{encoding}; jpeg compressed {target}", _imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return f"{encoding}; png compressed {target}", _imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, level])


def _encode_depth(
    pixels: np.ndarray, encoding: str, codec: str, level: int, depth_max: float, depth_quantization: float
) -> tuple[str, bytes]:
    if codec not in ("png", "rvl"):
        raise InputError(f"compressedDepth codec {codec!r}: expected png or rvl")
    if encoding == "32FC1":
        quant_a = np.float32(depth_quantization) * (np.float32(depth_quantization) + np.float32(1.0))
        quant_b = np.float32(1.0) - quant_a / np.float32(depth_max)
        stored = _quantise(pixels, quant_a, quant_b, np.float32(depth_max))
    elif encoding in DEPTH_ENCODINGS:
        quant_a = quant_b = np.float32(0.0)  # unset by the plugin for 16-bit depth
        stored = np.where(pixels > int(depth_max * 1000), 0, pixels).astype(np.uint16)
    else:
        raise InputError(f"compressedDepth carries 16UC1 or 32FC1 images, not {encoding}")
    if codec == "png":
        body = _imencode(".png", stored, [cv2.IMWRITE_PNG_COMPRESSION, level])
    else:
        body = struct.pack("<II", stored.shape[1], stored.shape[0]) + rvl.encode(stored)
    return f"{encoding}; compressedDepth {codec}", DEPTH_HEADER.pack(INV_DEPTH, quant_a, quant_b) + body


def _quantise(depth: np.ndarray, quant_a: np.float32, quant_b: np.float32, depth_max: np.float32) -> np.ndarray:
    """Inverse depth as the plugin stores it: 0 for invalid (NaN, <= 0, >= depth_max), else truncated."""
    valid = np.isfinite(depth) & (depth > 0) & (depth < depth_max)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        stored = quant_a / np.where(valid, depth, np.float32(1.0)) + quant_b
    return np.where(valid, np.clip(stored, 0, 65535), 0).astype(np.uint16)


def _imencode(extension: str, image: np.ndarray, params: list[int]) -> bytes:
    ok, buffer = cv2.imencode(extension, image, params)
    if not ok:
        raise InputError(
            f"OpenCV could not encode a {image.dtype} {'x'.join(map(str, image.shape))} image as {extension}"
        )
    return buffer.tobytes()
