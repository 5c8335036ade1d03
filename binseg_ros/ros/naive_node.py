"""The baseline a team would write first: three plain subscriptions, inference in the RGB
callback on whatever depth and thermal arrived last, no synchronisation, no health.

Only for ``binseg bench node``, which measures ``segment_node`` against it on the same model.
"""

from __future__ import annotations

import sys
from functools import partial

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.core.frame import Arrival, Frame, FrameSet
from binseg_ros.core.messages import to_frame
from binseg_ros.core.segmenter import Segmenter
from binseg_ros.engines.locate import open_engine_folder
from binseg_ros.ros.conversions import to_image


class NaiveNode(Node):
    """Subscribes to the three cameras and segments on every RGB image; publishes ``~/mask`` only."""

    def __init__(self, engine_dir: str) -> None:
        super().__init__("segment_node")  # same name, so the same player and topics work
        manifest = open_engine_folder(engine_dir)
        self.segmenter = Segmenter(OnnxRuntimeBackend(manifest), manifest.input_size)
        self.latest: dict[str, Frame] = {}
        self.publisher = self.create_publisher(Image, "~/mask", 5)
        for modality in ("rgb", "depth", "thermal"):
            self.create_subscription(
                Image, f"{modality}/image", partial(self.on_image, modality), qos_profile_sensor_data
            )

    def on_image(self, modality: str, msg: Image) -> None:
        """Keep the latest frame of each camera; on RGB, once all three arrived, segment in the callback."""
        self.latest[modality] = to_frame(modality, msg, Arrival(0))[0]
        if modality != "rgb" or len(self.latest) < 3:
            return
        result = self.segmenter(FrameSet(self.latest["rgb"], dict(self.latest)))
        self.publisher.publish(to_image(result.mask, "mono8", msg.header))


def main() -> int:
    """``python -m binseg_ros.ros.naive_node ENGINE_DIR``: spin until SIGINT, like the real node."""
    rclpy.init()
    node = NaiveNode(sys.argv[1])
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
