"""numpy → ``sensor_msgs/Image`` for the node's outputs (inputs: :mod:`binseg_ros.images`)."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from binseg_ros.images import ENCODINGS


def to_image(array: np.ndarray, encoding: str, header: Header) -> Image:
    """A ``sensor_msgs/Image`` holding a copy of ``array`` (little-endian, packed rows)."""
    dtype, channels = ENCODINGS[encoding]
    array = np.ascontiguousarray(array, dtype=dtype)
    msg = Image(header=header, height=array.shape[0], width=array.shape[1], encoding=encoding, is_bigendian=0)
    msg.step = array.shape[1] * channels * dtype.itemsize
    msg.data = array.tobytes()
    return msg
