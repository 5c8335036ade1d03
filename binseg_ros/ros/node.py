"""``segment_node``: RGB / depth / thermal images in, masks and diagnostics out.

A thin adapter: messages go into the ROS-free
:class:`~binseg_ros.core.runtime.SegmentationRuntime`, which decodes and synchronises them and
runs inference on its own thread, and results become messages again.
"""

from __future__ import annotations

import sys
from functools import partial

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from binseg_ros.backends.factory import create_backend, resolve
from binseg_ros.core.frame import Arrival
from binseg_ros.core.postprocess import overlay
from binseg_ros.core.runtime import SegmentationRuntime
from binseg_ros.core.segmenter import Segmentation, Segmenter
from binseg_ros.engines.locate import open_engine_folder
from binseg_ros.errors import BinsegError
from binseg_ros.modalities import all_subsets, image_topic
from binseg_ros.ros.conversions import header, to_image
from binseg_ros.ros.diagnostics import build_diagnostics
from binseg_ros.ros.params import declare_settings

POLL_PERIOD = 0.02  # s: how often a silent sensor's timeout is checked
OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)  # reaches best-effort subscribers too


class SegmentNode(Node):
    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__("segment_node", **kwargs)
        self.settings = s = declare_settings(self)
        manifest = open_engine_folder(s.engine_dir)
        backend = create_backend(
            s.backend, manifest, s.frequency_form, s.device, precision=s.precision, plugin_library=s.plugin_library
        )
        self.backend_name = resolve(s.backend)
        segmenter = Segmenter(backend, manifest.input_size, s.threshold)
        for subset in all_subsets():  # every engine a fallback may need, before the first frame
            if set(subset) <= set(s.modalities):
                segmenter.warm_up(subset)
        self.runtime = SegmentationRuntime(segmenter, s.sync_config(), self._publish, s.thermal_units())

        self._image_subs = {
            m: self.create_subscription(Image, image_topic(m), partial(self._on_image, m), s.input_qos())
            for m in s.modalities
        }
        self._mask_pub = self.create_publisher(Image, "~/mask", OUTPUT_QOS)
        self._probability_pub = self.create_publisher(Image, "~/probability", OUTPUT_QOS)
        self._overlay_pub = self.create_publisher(Image, "~/overlay", OUTPUT_QOS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(POLL_PERIOD, self._poll)
        self.create_timer(s.diagnostics_period, self._publish_diagnostics)
        self.get_logger().info(
            f"model {manifest.model} {manifest.version} at {manifest.input_size[0]}x{manifest.input_size[1]} "
            f"on {self.backend_name}; subscribed to {', '.join(self.topics().values())}"
        )

    def topics(self) -> dict[str, str]:
        return {m: sub.topic_name for m, sub in self._image_subs.items()}

    def _now(self) -> int:
        return int(self.get_clock().now().nanoseconds)

    def _on_image(self, modality: str, msg: Image) -> None:
        error = self.runtime.ingest(modality, msg, Arrival(self._now()))
        if error is not None:
            self.get_logger().warning(f"dropped {modality} image: {error}", throttle_duration_sec=5.0)

    def _poll(self) -> None:
        self.runtime.poll(self._now())

    def _publish(self, result: Segmentation) -> None:
        """Runs on the inference thread; optional outputs only while someone listens."""
        anchor = result.frameset.anchor
        out = header(anchor.stamp_ns, anchor.frame_id)
        self._mask_pub.publish(to_image(result.mask, "mono8", out))
        s = self.settings
        if s.publish_probability and self._probability_pub.get_subscription_count() > 0:
            self._probability_pub.publish(to_image(result.probability, "32FC1", out))
            self.runtime.note_published("probability")
        if s.publish_overlay and self._overlay_pub.get_subscription_count() > 0:
            background = result.frameset.background().data
            self._overlay_pub.publish(to_image(overlay(background, result.mask), "rgb8", out))
            self.runtime.note_published("overlay")

    def _publish_diagnostics(self) -> None:
        status = self.runtime.status(self._now())
        self._diagnostics_pub.publish(
            build_diagnostics(
                status,
                self.get_fully_qualified_name(),
                self.get_clock().now().to_msg(),
                self.settings.modalities,
                self.topics(),
                self.backend_name,
            )
        )

    def close(self) -> None:
        self.runtime.close()
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run binseg_ros segment_node``; exit 1 on a start-up error."""
    rclpy.init(args=args)
    node = None
    try:
        node = SegmentNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except BinsegError as exc:
        rclpy.logging.get_logger("segment_node").fatal(f"cannot start: {exc}")
        return 1
    finally:
        if node is not None:
            node.close()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
