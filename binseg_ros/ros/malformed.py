"""Image messages broken in one way each, as buggy drivers and bridges send them.

The node must count each under its own drop reason and go on; the node tests and the soak
bench send these to prove it. Each is a small ``mono16`` thermal image with one field wrong.
"""

from __future__ import annotations

from sensor_msgs.msg import Image
from std_msgs.msg import Header

from binseg_ros.core.drops import DropReason


def malformed_image(kind: DropReason, header: Header) -> Image:
    """A 4x4 thermal message with the one defect ``kind`` names: ``bad_step``, ``bad_data_length``,
    ``unknown_encoding``, ``zero_size`` or ``unsupported_encoding``."""
    msg = Image(header=header, height=4, width=4, encoding="mono16", step=8, is_bigendian=0)
    msg.data = bytes(32)
    if kind is DropReason.BAD_STEP:
        msg.step = 4
        msg.data = bytes(16)
    elif kind is DropReason.BAD_DATA_LENGTH:
        msg.data = bytes(31)
    elif kind is DropReason.UNKNOWN_ENCODING:
        msg.encoding = "yuv422_yuy2"
    elif kind is DropReason.ZERO_SIZE:
        msg.height, msg.width, msg.step, msg.data = 0, 0, 0, b""
    elif kind is DropReason.UNSUPPORTED_ENCODING:
        msg.encoding = "rgb8"
        msg.step = 12
        msg.data = bytes(48)
    else:
        raise ValueError(f"no malformed message for {kind.value}")
    return msg
