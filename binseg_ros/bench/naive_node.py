"""The baseline a team would write first: three plain subscriptions, inference in the RGB
callback on whatever depth and thermal arrived last, no synchronisation, no health.

Only for ``binseg bench node``, which measures ``segment_node`` against it on the same model.
"""

from __future__ import annotations

import sys

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.engines.manifest import Manifest
from binseg_ros.images import to_sensor_units
from binseg_ros.ros.conversions import to_image
from binseg_ros.segmenter import Segmenter
from binseg_ros.sync import Frame, FrameSet


class NaiveNode(Node):
    def __init__(self, engine_dir: str) -> None:
        super().__init__("segment_node")  # same name, so the same player and topics work
        manifest = Manifest.load(engine_dir)
        self.segmenter = Segmenter(OnnxRuntimeBackend(manifest), manifest.input_size)
        self.latest: dict[str, np.ndarray] = {}
        self.publisher = self.create_publisher(Image, "~/mask", 5)
        for modality in ("rgb", "depth", "thermal"):
            self.create_subscription(Image, f"{modality}/image", lambda m, k=modality: self.on_image(k, m),
                                     qos_profile_sensor_data)

    def on_image(self, modality: str, msg: Image) -> None:
        self.latest[modality] = to_sensor_units(modality, msg)[0]
        if modality != "rgb" or len(self.latest) < 3:
            return
        frames = {m: Frame(m, 0.0, 0.0, data) for m, data in self.latest.items()}
        result = self.segmenter(FrameSet(frames["rgb"], frames))
        self.publisher.publish(to_image(result.mask, "mono8", msg.header))


def main() -> int:
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
