"""A camera → reference homography from point pairs: typed in a CSV or found on a calibration target.

Pixels follow OpenCV and ROS: the centre of the top-left pixel is (0, 0). The homography maps
the camera's raw image pixels (as published, not undistorted) to the reference's, which is
exact for a plane and a good approximation when the baseline is small against the distance
(see ``calibration/README.md``). A heated target shows in both images: a checkerboard (inner
corners) or a circle grid; thermal images are stretched to 8 bits first, and a target whose
polarity is reversed in one camera (warm circles bright, printed circles dark) is found in the
inverted image.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from binseg_ros.calibration.validate import MIN_SINGULAR_RATIO, Where
from binseg_ros.errors import CalibrationError

PATTERNS = ("checkerboard", "circles", "asymmetric-circles")
CSV_COLUMNS = ("u_thermal", "v_thermal", "u_rgb", "v_rgb")
MIN_POINTS = 4


@dataclass(frozen=True)
class PointPairs:
    """Matching pixels: ``camera[i]`` (N×2) in the camera's image is ``reference[i]`` in the reference's."""

    camera: np.ndarray
    reference: np.ndarray
    camera_size: tuple[int, int] | None = None  # (width, height) of the images they came from
    reference_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class HomographyFit:
    """A RANSAC homography and how well it maps its inliers (``errors_px`` per inlier)."""

    H: np.ndarray
    points: int
    inliers: int
    rms_px: float
    max_px: float


def read_point_pairs(path: Path) -> PointPairs:
    """``u_thermal,v_thermal,u_rgb,v_rgb`` rows (header optional; with one, columns go by name)."""
    where = Where(str(path))
    try:
        with open(path, newline="") as stream:
            rows = [(n, row) for n, row in enumerate(csv.reader(stream), 1) if row and not row[0].startswith("#")]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise where.error(f"cannot read point pairs: {exc}") from None
    order = [0, 1, 2, 3]
    if rows and not _is_number(rows[0][1][0]):
        header = [name.strip() for name in rows.pop(0)[1]]
        if set(CSV_COLUMNS) <= set(header):
            order = [header.index(name) for name in CSV_COLUMNS]
    values = []
    for line, row in rows:
        here = Where(str(path), f"line {line}")
        if len(row) != 4:
            raise here.error(f"expected 4 values ({','.join(CSV_COLUMNS)}), got {len(row)}")
        if not all(_is_number(cell) for cell in row):
            raise here.error(f"expected numbers, got {','.join(row)!r}")
        numbers = [float(row[i]) for i in order]
        if not all(math.isfinite(v) for v in numbers):
            raise here.error(f"expected finite numbers, got {','.join(row)!r}")
        values.append(numbers)
    array = np.asarray(values, dtype=np.float64).reshape(-1, 4)
    return PointPairs(camera=array[:, :2], reference=array[:, 2:])


def parse_grid(text: str) -> tuple[int, int]:
    """``9x6`` → ``(9, 6)``: columns × rows of inner corners or circles."""
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CalibrationError(f"grid must look like COLSxROWS (e.g. 9x6), got {text!r}") from None
    if cols < 2 or rows < 2:
        raise CalibrationError(f"grid needs at least 2x2 points, got {text!r}")
    return cols, rows


def to_8bit(image: np.ndarray) -> np.ndarray:
    """A grey uint8 image stretched between its 0.5th and 99.5th percentiles (thermal counts, 16-bit, colour)."""
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    values = image.astype(np.float64)
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, (0.5, 99.5)) if finite.size else (0.0, 0.0)
    if high <= low:
        return np.zeros(image.shape, dtype=np.uint8)
    values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
    return np.clip((values - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)


def find_pattern(path: Path, pattern: str, grid: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """The target's points (N×2, OpenCV's order) in the image at ``path``, and its (width, height)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise CalibrationError(f"{path}: cannot read the image")
    gray = to_8bit(image)
    for candidate in (gray, 255 - gray):
        if pattern == "checkerboard":
            flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
            found, points = cv2.findChessboardCorners(candidate, grid, flags=flags)
            if found:
                criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 0.01)
                points = cv2.cornerSubPix(candidate, points, (5, 5), (-1, -1), criteria)
        else:
            flags = cv2.CALIB_CB_ASYMMETRIC_GRID if pattern == "asymmetric-circles" else cv2.CALIB_CB_SYMMETRIC_GRID
            found, points = cv2.findCirclesGrid(candidate, grid, flags=flags)
        if found:
            return points.reshape(-1, 2).astype(np.float64), (image.shape[1], image.shape[0])
    cols, rows = grid
    raise CalibrationError(f"{path}: {pattern} {cols}x{rows} not found (tried the image and its inverse)")


def points_from_images(pairs: Sequence[tuple[Path, Path]], pattern: str, grid: tuple[int, int]) -> PointPairs:
    """The target's points in every (camera image, reference image) pair, matched point for point.

    A symmetric target can be numbered from another corner in the other image; of the grid's
    symmetries, the one that keeps the camera's image upright in the reference is taken.
    """
    if pattern not in PATTERNS:
        raise CalibrationError(f"unknown pattern {pattern!r} (expected {', '.join(PATTERNS)})")
    cameras, references, sizes = [], [], set()
    for camera_path, reference_path in pairs:
        camera_points, camera_size = find_pattern(camera_path, pattern, grid)
        reference_points, reference_size = find_pattern(reference_path, pattern, grid)
        sizes.add((camera_size, reference_size))
        if len(sizes) > 1:
            raise CalibrationError(f"{camera_path}, {reference_path}: image sizes differ from the first pair's")
        if pattern != "asymmetric-circles":
            camera_points = _upright_order(camera_points, reference_points, grid)
        cameras.append(camera_points)
        references.append(reference_points)
    if not pairs:
        raise CalibrationError("no image pairs given")
    (camera_size, reference_size) = sizes.pop()
    return PointPairs(np.concatenate(cameras), np.concatenate(references), camera_size, reference_size)


def _upright_order(camera: np.ndarray, reference: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``camera`` renumbered by the grid symmetry whose homography is most nearly a positive scaling."""
    import cv2

    cols, rows = grid
    index = np.arange(cols * rows).reshape(rows, cols)
    symmetries = [index, index[::-1, ::-1], index[::-1], index[:, ::-1]]
    if cols == rows:
        symmetries += [index.T, index.T[::-1, ::-1], index.T[::-1], index.T[:, ::-1]]
    centre = camera.mean(axis=0)
    best, best_score = camera, -np.inf
    for order in symmetries:
        H, _ = cv2.findHomography(camera[order.reshape(-1)], reference, 0)
        if H is None:
            continue
        J = _jacobian(H, centre)
        score = (J[0, 0] + J[1, 1]) / (np.linalg.norm(J) + 1e-12)
        if score > best_score:
            best, best_score = camera[order.reshape(-1)], score
    return best


def _jacobian(H: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The 2×2 derivative of the homography's pixel map at ``point``."""
    p = H @ np.array([point[0], point[1], 1.0])
    return (H[:2, :2] * p[2] - np.outer(p[:2], H[2, :2])) / p[2] ** 2


def fit_homography(pairs: PointPairs, threshold_px: float = 3.0, source: str = "point pairs") -> HomographyFit:
    """The homography (RANSAC, ``threshold_px`` reprojection threshold) from camera to reference pixels."""
    import cv2

    n = len(pairs.camera)
    if n < MIN_POINTS:
        raise CalibrationError(f"{source}: need at least {MIN_POINTS} point pairs, got {n}")
    H, mask = cv2.findHomography(pairs.camera, pairs.reference, cv2.RANSAC, threshold_px, maxIters=5000)
    if H is None or not np.isfinite(H).all() or abs(H[2, 2]) < 1e-12:
        raise CalibrationError(f"{source}: no homography fits the {n} point pairs (all on one line?)")
    singular = np.linalg.svd(H, compute_uv=False)
    if singular[-1] <= MIN_SINGULAR_RATIO * singular[0]:
        raise CalibrationError(f"{source}: the {n} point pairs give a singular homography (all on one line?)")
    H = H / H[2, 2]
    inliers = mask.reshape(-1).astype(bool)
    errors = reprojection_errors(H, pairs.camera[inliers], pairs.reference[inliers])
    rms = float(np.sqrt(np.mean(errors**2))) if errors.size else math.inf
    return HomographyFit(H, n, int(inliers.sum()), rms, float(errors.max()) if errors.size else math.inf)


def reprojection_errors(H: np.ndarray, camera: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Distance (px) between ``H`` applied to each camera point and its reference point."""
    mapped = np.c_[camera, np.ones(len(camera))] @ H.T
    return np.linalg.norm(mapped[:, :2] / mapped[:, 2:] - reference, axis=1)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
