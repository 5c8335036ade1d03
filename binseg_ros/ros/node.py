"""``segment_node``: RGB / depth / thermal images in, masks and diagnostics out.

A thin adapter: messages (``sensor_msgs/Image``, or ``CompressedImage`` with a modality's
``transport`` parameter set to ``compressed`` / ``compressedDepth``) go into the ROS-free
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
from rclpy.subscription import Subscription
from sensor_msgs.msg import CompressedImage, Image

from binseg_ros.backends.factory import create_backend
from binseg_ros.core.compressed import transport_topic
from binseg_ros.core.drops import DropReason
from binseg_ros.core.frame import Arrival
from binseg_ros.core.postprocess import overlay
from binseg_ros.core.registration import Registration
from binseg_ros.core.runtime import SegmentationRuntime
from binseg_ros.core.segmenter import Segmentation, Segmenter
from binseg_ros.engines.locate import open_engine_folder
from binseg_ros.errors import BinsegError
from binseg_ros.modalities import all_subsets, image_topic
from binseg_ros.ros.calibration_source import CalibrationSource
from binseg_ros.ros.conversions import header, to_image
from binseg_ros.ros.diagnostics import build_diagnostics, calibration_status
from binseg_ros.ros.params import NodeSettings, declare_settings

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
        self.backend_name = backend.name
        self.calibration = CalibrationSource(
            self, s.calibration_file, s.camera_info_source, s.modalities, self._calibrated, manifest.input_size
        )
        segmenter = Segmenter(backend, manifest.input_size, s.threshold, self.calibration.registration())
        for subset in all_subsets():  # every engine a fallback may need, before the first frame
            if set(subset) <= set(s.modalities):
                segmenter.warm_up(subset)
        self.runtime = SegmentationRuntime(
            segmenter, s.sync_config(), self._publish, s.thermal_units(), quality=s.quality_config()
        )

        self._image_subs = {m: self._subscribe(m, s) for m in s.modalities}
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

    def _subscribe(self, modality: str, settings: NodeSettings) -> Subscription:
        """``<modality>/image`` (raw), or the ``/compressed`` or ``/compressedDepth`` topic of that
        name after remapping, as an image_transport subscriber resolves it."""
        transport = settings.transport(modality)
        callback = partial(self._on_image, modality)
        if transport == "raw":
            return self.create_subscription(Image, image_topic(modality), callback, settings.input_qos())
        topic = transport_topic(self.resolve_topic_name(image_topic(modality)), transport)
        return self.create_subscription(CompressedImage, topic, callback, settings.input_qos())

    def topics(self) -> dict[str, str]:
        return {m: sub.topic_name for m, sub in self._image_subs.items()}

    def _now(self) -> int:
        return int(self.get_clock().now().nanoseconds)

    def _calibrated(self, registration: Registration) -> None:
        """Every camera_info arrived: register from now on."""
        self.runtime.use_registration(registration)

    def _on_image(self, modality: str, msg: Image | CompressedImage) -> None:
        if not self.calibration.complete:  # the rig's intrinsics are not all known yet: count, publish nothing
            self.runtime.reject(modality, DropReason.CALIBRATION_INCOMPLETE)
            return
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
        name = self.get_fully_qualified_name()
        array = build_diagnostics(
            status, name, self.get_clock().now().to_msg(), self.settings.modalities, self.topics(), self.backend_name
        )
        if self.settings.calibration_file:
            array.status.append(
                calibration_status(name, self.calibration.description, self.calibration.missing, status)
            )
        self._diagnostics_pub.publish(array)

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
