"""Where the node's rig calibration comes from: a rig file, or its mounts plus ``camera_info`` topics.

- ``calibration_file: ''``: inputs are already registered; nothing to wait for.
- ``camera_info_source: file``: the rig file (and the camera_info files it names) is the whole
  calibration, loaded and validated at start-up: a bad file stops the node with one line.
- ``camera_info_source: topics``: the rig file gives the mounts (transforms, homographies) and
  each camera's intrinsics come from the ``camera_info`` topic beside its image topic, as
  drivers publish them (``/cam/color/image_raw`` → ``/cam/color/camera_info``, after remapping,
  as image_transport pairs them), with the images' QoS and ``qos_overrides``. Until
  every camera the node subscribes to has sent one, the calibration is incomplete: the node
  counts its images as ``calibration_incomplete`` and publishes nothing, and ``/diagnostics``
  names the topics it waits for. A ``camera_info`` that cannot be used is logged and waited past.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo as CameraInfoMsg

from binseg_ros.calibration.files import camera_info_from_message, load_rig
from binseg_ros.calibration.model import CameraInfo, Rig
from binseg_ros.core.registration import Registration
from binseg_ros.errors import CalibrationError
from binseg_ros.ros.qos import subscribe

SOURCES = ("file", "topics")


def camera_info_topic(image_topic: str) -> str:
    """The camera_info topic beside a resolved image topic: its last name replaced, as
    image_transport's ``getCameraInfoTopic`` pairs them, so remapping the image moves both."""
    namespace, _, _ = image_topic.rpartition("/")
    return f"{namespace}/camera_info"


class CalibrationSource:
    """The rig the node registers with, and what it still waits for."""

    def __init__(
        self, node: Node, calibration_file: str, source: str, image_topics: Mapping[str, str],
        on_complete: Callable[[Registration], None], qos: QoSProfile, output_size: tuple[int, int] | None = None,
    ) -> None:  # fmt: skip
        """``image_topics``: each subscribed modality's resolved image topic; ``qos``: the images'
        (drivers publish camera_info as they publish images, often best effort, which a reliable
        subscription would never hear); ``output_size``: where registered frames land (the
        network's input size).

        Raises:
            ConfigError: a ``qos_overrides`` value for a camera_info topic that its policy does not have.
        """
        self._output_size = output_size
        self.description = "none (inputs registered)" if not calibration_file else f"{calibration_file}, {source}"
        self._rig: Rig | None = load_rig(calibration_file) if calibration_file else None
        self._on_complete = on_complete
        self._infos: dict[str, CameraInfo] = {}
        self._node = node
        self._subscriptions: dict[str, Any] = {}
        if self._rig is not None and source == "topics":
            for modality in (m for m in image_topics if m in self._rig.cameras):
                topic = camera_info_topic(image_topics[modality])
                callback = partial(self._on_camera_info, modality)
                self._subscriptions[modality] = subscribe(node, CameraInfoMsg, topic, callback, qos)

    def registration(self) -> Registration | None:
        """The registration to start with: the file's, when the file is the whole calibration."""
        if self._rig is None or self._subscriptions:
            return None
        return Registration(self._rig, output_size=self._output_size)

    @property
    def missing(self) -> list[str]:
        """The camera_info topics not heard from yet (empty once complete)."""
        return [sub.topic_name for m, sub in self._subscriptions.items() if m not in self._infos]

    @property
    def complete(self) -> bool:
        return not self.missing

    def _on_camera_info(self, modality: str, msg: CameraInfoMsg) -> None:
        if self._rig is None or modality in self._infos:
            return
        topic = self._subscriptions[modality].topic_name
        try:
            self._infos[modality] = camera_info_from_message(msg, topic)
            if self.complete:
                rig = _with_intrinsics(self._rig, self._infos)
                self._on_complete(Registration(rig, output_size=self._output_size))
                self._node.get_logger().info(f"calibration complete: intrinsics from {len(self._infos)} topic(s)")
        except CalibrationError as error:
            self._infos.pop(modality, None)
            self._node.get_logger().error(f"cannot use {topic}: {error}", throttle_duration_sec=5.0)


def _with_intrinsics(rig: Rig, infos: dict[str, CameraInfo]) -> Rig:
    """The rig's mounts with the intrinsics the cameras published.

    Raises:
        CalibrationError: a camera with neither transform nor homography that is not at the
            reference camera's size, now that the sizes come from the drivers.
    """
    cameras = {m: replace(mount, info=infos.get(m, mount.info)) for m, mount in rig.cameras.items()}
    merged = replace(rig, cameras=cameras)
    for modality, mount in cameras.items():
        if mount.registered and mount.info.resolution != merged.reference_info.resolution:
            raise CalibrationError(
                f"{modality}: camera_info says {mount.info.width}x{mount.info.height}, but the rig has no transform "
                f"or homography for it, so it must be at the reference size "
                f"{merged.reference_info.width}x{merged.reference_info.height}"
            )
    return merged
