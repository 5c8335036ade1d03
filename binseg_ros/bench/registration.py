"""``binseg bench registration``: per-frame registration cost against naive per-frame code.

Input: the first shipped sample frame (:data:`~binseg_ros.datasets.SAMPLE`, MM5, registered at
640×480) rendered into :func:`~binseg_ros.bags.rig_render.synthetic_rig` and encoded as camera
drivers publish it (depth uint16 mm, thermal uint16 counts): depth 424×240 on a transform,
thermal 320×256 behind a homography; a second rig puts the thermal camera on a transform.

Rows (median wall time of ``runs`` calls after ``warmup``, this process's OpenCV threads):

- thermal, homography: :class:`~binseg_ros.core.registration.Registration`'s precomputed
  fixed-point ``cv2.remap`` against ``cv2.warpPerspective`` per frame (which derives its maps
  from the homography in every call);
- depth, transform (z-buffer + fill): the precomputed ray grid and vectorised splat against the
  same steps computed per frame: ``cv2.undistortPoints`` of the valid pixels,
  ``cv2.projectPoints`` into the reference, ``np.minimum.at`` z-buffer, the same fill;
- thermal, transform (depth-aided): precomputed reference rays against ``cv2.undistortPoints``
  of the reference grid and ``cv2.projectPoints`` into the thermal camera per frame;
- whole set: ``Registration(frameset)`` for rgb + depth + thermal, each rig (no baseline).

``×baseline`` is the baseline's time over registration's; ``p99 abs diff`` compares the two
outputs where both are valid, away from the edge of the view (a check that the baseline computes
the same thing).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable

import cv2
import numpy as np

from binseg_ros.bags.rig_render import render_into_rig, synthetic_rig
from binseg_ros.bench.timing import latency_samples_ms
from binseg_ros.calibration.model import CameraInfo, CameraMount, Rig
from binseg_ros.core.frame import Arrival, Frame, FrameSet
from binseg_ros.core.projection import coefficients, intrinsics
from binseg_ros.core.registration import Registration, depth_metres, drop_hidden, fill_gaps
from binseg_ros.datasets import SAMPLE, list_ids, load_frame


def _published(rig: Rig) -> FrameSet:
    frame = load_frame(SAMPLE, list_ids(SAMPLE)[0])
    images = render_into_rig(frame, rig)
    frames = {
        "rgb": Frame("rgb", 0, Arrival(0), images["rgb"], "rgb"),
        "depth": Frame("depth", 0, Arrival(0), np.round(images["depth"] * 1000).astype(np.uint16), "depth", 0.001),
        "thermal": Frame("thermal", 0, Arrival(0), np.round(images["thermal"]).astype(np.uint16), "thermal"),
    }
    return FrameSet(frames["rgb"], frames)


def _project(points: np.ndarray, info: CameraInfo) -> np.ndarray:
    """``cv2.projectPoints`` (fisheye for equidistant) of Nx3 camera-frame points → Nx2 pixels."""
    K, D, zero = intrinsics(info), coefficients(info), np.zeros(3)
    if info.distortion_model == "equidistant":
        return cv2.fisheye.projectPoints(points[:, None], zero, zero, K, D)[0][:, 0]
    return cv2.projectPoints(points, zero, zero, K, D)[0][:, 0]


def _rays(u: np.ndarray, v: np.ndarray, info: CameraInfo) -> np.ndarray:
    """``cv2.undistortPoints`` of pixel coordinates → Nx3 rays (z = 1)."""
    pixels = np.stack([u, v], axis=-1).astype(np.float64).reshape(-1, 1, 2)
    K, D = intrinsics(info), coefficients(info)
    fisheye = info.distortion_model == "equidistant"
    xy = (cv2.fisheye.undistortPoints if fisheye else cv2.undistortPoints)(pixels, K, D)[:, 0]
    return np.column_stack([xy, np.ones(len(xy))])


def naive_depth(frame: Frame, mount: CameraMount, reference: CameraInfo, radius: int, ratio: float) -> np.ndarray:
    """Depth registration computed from scratch per frame (the baseline)."""
    depth = depth_metres(frame)
    v, u = np.nonzero(depth)
    T = np.asarray(mount.T_reference_camera)
    points = (_rays(u, v, mount.info) * depth[v, u][:, None]) @ T[:3, :3].T + T[:3, 3]
    keep = points[:, 2] > 1e-3
    points = points[keep]
    pixels = np.rint(_project(points, reference)).astype(np.intp)
    height, width = reference.resolution
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
    buffer = np.full(height * width, np.inf, dtype=np.float32)
    index = pixels[inside, 1] * width + pixels[inside, 0]
    np.minimum.at(buffer, index, points[inside, 2].astype(np.float32))
    buffer[np.isinf(buffer)] = 0
    splat = buffer.reshape(height, width)
    return fill_gaps(drop_hidden(splat, radius, ratio), radius, ratio)


def naive_depth_aided(frame: Frame, depth: np.ndarray, mount: CameraMount, reference: CameraInfo) -> np.ndarray:
    """Depth-aided reprojection computed from scratch per frame (the baseline), plane at 2 m."""
    height, width = reference.resolution
    v, u = np.mgrid[0:height, 0:width]
    z = np.where(depth > 0, depth, 2.0).reshape(-1, 1)
    T = np.linalg.inv(np.asarray(mount.T_reference_camera))
    points = (_rays(u.ravel(), v.ravel(), reference) * z) @ T[:3, :3].T + T[:3, 3]
    pixels = _project(points, mount.info).astype(np.float32).reshape(height, width, 2)
    return cv2.remap(
        frame.data.astype(np.float32), pixels, np.empty((0, 0), np.float32), cv2.INTER_LINEAR, borderValue=0
    )


def _p99_difference(a: np.ndarray, b: np.ndarray) -> float:
    # Away from the edge of what both see: there linear interpolation blends with the border, and
    # registration gives pixels a thermal camera does not see the mean of those it does.
    both = cv2.erode(((a > 0) & (b > 0)).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return float(np.percentile(np.abs(a[both].astype(np.float64) - b[both]), 99)) if both.any() else float("nan")


def _row(name: str, ours: Callable[[], np.ndarray], baseline: Callable[[], np.ndarray] | None, runs: int, warmup: int,
         label: str = "", unit: str = "") -> None:  # fmt: skip
    mine = statistics.median(latency_samples_ms(ours, runs, warmup))
    cells = [name, f"{mine:.2f}", "", label, "", ""]
    if baseline is not None:
        theirs = statistics.median(latency_samples_ms(baseline, runs, warmup))
        delta = _p99_difference(np.asarray(ours()), np.asarray(baseline()))
        cells[2], cells[4], cells[5] = f"{theirs:.2f}", f"{theirs / mine:.1f}", f"{delta:.3g} {unit}"
    print("| " + " | ".join(cells) + " |", flush=True)


def run_registration_bench(runs: int = 200, warmup: int = 20) -> int:
    """Print the markdown table described in the module docstring; returns the exit code."""
    rig = synthetic_rig()
    rig_t = synthetic_rig(thermal_on_transform=True)
    registration, registration_t = Registration(rig), Registration(rig_t)
    frameset, frameset_t = _published(rig), _published(rig_t)
    reference = rig.reference_info
    depth, thermal = frameset.frames["depth"], frameset.frames["thermal"]
    H = np.asarray(rig.cameras["thermal"].homography)
    size = (reference.width, reference.height)
    registered_depth = depth_metres(registration(frameset).frames["depth"])
    print(f"{os.cpu_count()} CPUs, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), numpy {np.__version__}")
    print(f"reference {reference.width}x{reference.height}, depth 424x240 (uint16 mm), thermal 320x256 (uint16)")
    print(f"median of {runs} calls after {warmup} warm-up calls; ×baseline: the baseline's time over registration's")
    print()
    print("| step | registration ms | baseline ms | baseline | ×baseline | p99 abs diff |")
    print("|---|---:|---:|---|---:|---:|")
    _row("thermal, homography", lambda: registration.register(thermal).data,
         lambda: cv2.warpPerspective(thermal.data.astype(np.float32), H, size), runs, warmup,
         "cv2.warpPerspective per frame", "counts")  # fmt: skip
    mount = rig.cameras["depth"]
    _row("depth, transform (z-buffer + fill)", lambda: registration.register(depth).data,
         lambda: naive_depth(depth, mount, reference, 2, 0.05), runs, warmup,
         "per-frame undistort + projectPoints + minimum.at", "m")  # fmt: skip
    thermal_t, mount_t = frameset_t.frames["thermal"], rig_t.cameras["thermal"]
    _row("thermal, transform (depth-aided)", lambda: registration_t.register(thermal_t, registered_depth).data,
         lambda: naive_depth_aided(thermal_t, registered_depth, mount_t, reference), runs, warmup,
         "per-frame undistort + projectPoints + remap", "counts")  # fmt: skip
    _row("whole set, thermal on homography", lambda: registration(frameset).frames["thermal"].data, None, runs,
         warmup)  # fmt: skip
    _row("whole set, thermal on transform", lambda: registration_t(frameset_t).frames["thermal"].data, None, runs,
         warmup)  # fmt: skip
    return 0
