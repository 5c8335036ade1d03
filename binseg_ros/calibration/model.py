"""What a calibrated rig is, as values: cameras, their intrinsics, and their mounts.

Everything here is already validated (by :mod:`binseg_ros.calibration.files` for rig files,
:func:`camera_info_from_message` for ``camera_info`` topics), so registration can trust it.
Conventions follow ROS: ``K``/``D``/``R``/``P`` as in ``sensor_msgs/CameraInfo``, optical frames
(x right, y down, z forward), metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
"""The distortion models registration can undo (OpenCV's pinhole and fisheye models)."""


@dataclass(frozen=True, eq=False)
class CameraInfo:
    """One camera's intrinsics, in the fields of ``sensor_msgs/CameraInfo``."""

    name: str
    width: int
    height: int
    K: np.ndarray  # 3x3 camera matrix
    distortion_model: str
    D: np.ndarray  # distortion coefficients (5 or 8 for pinhole models, 4 for equidistant)
    R: np.ndarray = field(default_factory=lambda: np.eye(3))  # 3x3 rectification
    P: np.ndarray | None = None  # 3x4 projection (unused by registration; kept for round trips)

    @property
    def resolution(self) -> tuple[int, int]:
        """``(height, width)``, the order images are indexed in."""
        return self.height, self.width


@dataclass(frozen=True, eq=False)
class CameraMount:
    """How one camera's images reach the reference camera.

    ``T_reference_camera`` (4x4): p_ref = T · p_cam, metres, optical frames. ``homography``
    (3x3): the camera's pixel (u, v, 1) → the reference's pixel. With neither, the camera is
    already registered (same resolution as the reference, pixel for pixel).
    """

    modality: str
    info: CameraInfo
    T_reference_camera: np.ndarray | None = None
    homography: np.ndarray | None = None

    @property
    def registered(self) -> bool:
        return self.T_reference_camera is None and self.homography is None


@dataclass(frozen=True, eq=False)
class Rig:
    """Every camera of the rig; ``reference`` is the camera all modalities are registered into."""

    reference: str
    cameras: dict[str, CameraMount]
    source: Path | None = None  # the rig file, for messages

    @property
    def reference_info(self) -> CameraInfo:
        return self.cameras[self.reference].info

    def resolution(self, modality: str) -> tuple[int, int]:
        """The image size this modality's camera publishes (a camera the rig does not list is
        taken as registered: the reference's size)."""
        mount = self.cameras.get(modality)
        return (mount or self.cameras[self.reference]).info.resolution
