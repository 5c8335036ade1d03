"""numpy → rclpy ``sensor_msgs/Image`` for the node's outputs (the fields come from
:func:`binseg_ros.core.messages.image_fields`, which the bag writer uses too), and
``sensor_msgs/CompressedImage`` as image_transport publishes it (for players and tests)."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from binseg_ros.core.compressed import encode
from binseg_ros.core.messages import image_fields


def to_image(array: np.ndarray, encoding: str, header: Header) -> Image:
    """A ``sensor_msgs/Image`` holding a copy of ``array`` (little-endian, packed rows)."""
    fields = image_fields(array, encoding)
    fields["data"] = fields["data"].tobytes()  # rclpy copies bytes in one go; an ndarray element by element
    return Image(header=header, **fields)


def to_compressed_image(
    array: np.ndarray, encoding: str, header: Header, transport: str = "compressed", codec: str | None = None
) -> CompressedImage:
    """``array`` in ``encoding`` as image_transport's ``transport`` plugin publishes it
    (:func:`binseg_ros.core.compressed.encode`)."""
    fmt, data = encode(array, encoding, transport, codec)
    return CompressedImage(header=header, format=fmt, data=data)


def header(stamp_ns: int, frame_id: str) -> Header:
    """The header of an output: the anchor frame's stamp and frame id."""
    msg = Header(frame_id=frame_id)
    msg.stamp.sec, msg.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg
