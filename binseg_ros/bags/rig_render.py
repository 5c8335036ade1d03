"""Registered data → what each camera of a rig would publish: unregistered test data.

The inverse of :mod:`binseg_ros.core.registration`, with the same geometry
(:mod:`binseg_ros.core.projection`). MM5 frames are registered to the RGB camera at 640×480;
:func:`render_into_rig` makes each other camera's view of one:

- registered cameras (the reference among them): the image unchanged;
- homography: pixel (u, v) of the camera samples the reference at ``H · (u, v, 1)``
  (nearest for depth and labels, linear otherwise);
- depth with ``T_reference_camera``: the reference depth, forward-projected into the depth
  camera with a z-buffer (nearest surface wins), its distortion, its resolution; the
  camera-frame z of each pixel. Pixels nothing projects onto (disocclusions, a wider field of
  view, holes of the reference depth) stay 0, as a real sensor's do;
- anything else with ``T_reference_camera``: the reference depth splatted into the camera as
  above gives each camera pixel a 3-D point, projected into the reference and sampled; where
  that depth is 0 the point is taken on a plane ``plane_distance_m`` in front of the camera.

:func:`synthetic_rig` is the test rig of the registration feature.
"""

from __future__ import annotations

import cv2
import numpy as np

from binseg_ros.calibration.model import CameraInfo, CameraMount, Rig
from binseg_ros.core.projection import RayCast, homography_maps

PLANE_DISTANCE_M = 2.0
NEAREST = frozenset({"depth", "label"})


def _camera_depth(reference_depth: np.ndarray, mount: CameraMount, rig: Rig) -> np.ndarray:
    """The reference depth (metres) as ``mount``'s camera sees it, in its frame."""
    T = np.asarray(mount.T_reference_camera, dtype=np.float64)
    return RayCast(rig.reference_info, mount.info, np.linalg.inv(T)).splat(reference_depth.astype(np.float32))


def render_for_camera(
    image: np.ndarray,
    camera: str,
    rig: Rig,
    reference_depth: np.ndarray,
    nearest: bool = False,
    plane_distance_m: float = PLANE_DISTANCE_M,
) -> np.ndarray:
    """Any reference-camera image (an RGB, thermal or label image, a mask) as ``camera`` sees it.

    ``reference_depth`` (float32 metres at the reference resolution) places each pixel in 3-D
    for ``T``-mounted cameras. ``nearest`` for values that must not be blended (labels).
    """
    mount = rig.cameras[camera]
    if mount.registered or camera == rig.reference:
        return image
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    if mount.homography is not None:
        map_x, map_y = homography_maps(np.asarray(mount.homography, dtype=np.float64), mount.info.resolution)
    else:
        T = np.asarray(mount.T_reference_camera, dtype=np.float64)
        depth = _camera_depth(reference_depth, mount, rig)
        cast = RayCast(mount.info, rig.reference_info, T)
        map_x, map_y = cast.maps(depth)
        plane_x, plane_y = cast.maps(plane_distance_m)
        np.copyto(map_x, plane_x, where=depth == 0)
        np.copyto(map_y, plane_y, where=depth == 0)
    return cv2.remap(image, map_x, map_y, interpolation, borderValue=0)


def render_into_rig(frame: dict[str, np.ndarray], rig: Rig) -> dict[str, np.ndarray]:
    """A registered dataset frame (sensor units, reference resolution) → each rig camera's image.

    Returns the modalities of ``frame`` that the rig has a camera for: ``rgb`` as is, ``depth``
    float32 metres and ``thermal`` float32 counts at their cameras' resolutions. The label stays
    with the reference camera (render it with :func:`render_for_camera` when a test needs it).
    """
    depth = frame["depth"].astype(np.float32)
    out: dict[str, np.ndarray] = {}
    for modality in (m for m in ("rgb", "depth", "thermal") if m in frame and m in rig.cameras):
        mount = rig.cameras[modality]
        if modality == "depth" and mount.T_reference_camera is not None and modality != rig.reference:
            out[modality] = _camera_depth(depth, mount, rig)
        else:
            image = frame[modality].astype(np.float32) if modality == "thermal" else frame[modality]
            out[modality] = render_for_camera(image, modality, rig, depth, nearest=modality in NEAREST)
    return out


def _pose(tilt_pan_deg: tuple[float, float], translation: tuple[float, float, float]) -> np.ndarray:
    """4x4 ``T_reference_camera``: the rotation vector (tilt, pan, 0) in degrees about the optical
    frame's x and y (down) axes, and a shift in metres."""
    T = np.eye(4)
    tilt, pan = np.deg2rad(tilt_pan_deg)
    T[:3, :3] = cv2.Rodrigues(np.array([tilt, pan, 0.0]))[0]
    T[:3, 3] = translation
    return T


def _camera(name: str, size: tuple[int, int], focal: float, model: str, D: list[float]) -> CameraInfo:
    height, width = size
    K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    return CameraInfo(name, width, height, K, model, np.array(D, dtype=np.float64))


def synthetic_rig(reference_size: tuple[int, int] = (480, 640), thermal_on_transform: bool = False) -> Rig:
    """The registration test rig, its reference RGB camera at ``reference_size`` (height, width).

    - ``rgb``: fx = fy = 525 at 640 wide (scaled with the width), principal point at the
      centre, slight plumb_bob distortion (k1 = 0.02, k2 = -0.03, p = 1e-4);
    - ``depth``: 424×240, fx = fy = 213 (a RealSense-like 89° × 59° field of view, wider than
      the RGB's 62° × 49°), k1 = -0.01; 6 cm to the right of the RGB camera, turned 2° about
      its vertical axis (``T_reference_camera``);
    - ``thermal``: 320×256 (fx = fy = 295, a 57° × 47° lens) behind a homography: scale 1.78 (at
      640 wide), the centre shifted by (+12, -8) reference pixels, a slight perspective term;
      with ``thermal_on_transform``, instead 4 cm below the RGB camera, tilted 1° about its x axis
      (depth-aided registration).
    """
    height, width = reference_size
    zoom = width / 640
    rgb = _camera("rgb", reference_size, 525.0 * zoom, "plumb_bob", [0.02, -0.03, 1e-4, -1e-4, 0.0])
    depth = _camera("depth", (240, 424), 213.0, "plumb_bob", [-0.01, 0.0, 0.0, 0.0, 0.0])
    thermal = _camera("thermal", (256, 320), 295.0, "plumb_bob", [0.0] * 5)
    scale = 525.0 / 295.0
    centre = np.array([[1.0, 0.0, -159.5], [0.0, 1.0, -127.5], [0.0, 0.0, 1.0]])
    perspective = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [2e-5, -1.5e-5, 1.0]])
    placed = np.array([[scale, 0.0, 319.5 + 12], [0.0, scale, 239.5 - 8], [0.0, 0.0, 1.0]])
    homography = np.diag([zoom, height / 480, 1.0]) @ placed @ perspective @ centre
    if thermal_on_transform:
        thermal_mount = CameraMount("thermal", thermal, T_reference_camera=_pose((1.0, 0.0), (0.0, 0.04, 0.0)))
    else:
        thermal_mount = CameraMount("thermal", thermal, homography=homography / homography[2, 2])
    return Rig(
        reference="rgb",
        cameras={
            "rgb": CameraMount("rgb", rgb),
            "depth": CameraMount("depth", depth, T_reference_camera=_pose((0.0, 2.0), (0.06, 0.0, 0.0))),
            "thermal": thermal_mount,
        },
    )
