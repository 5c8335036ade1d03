"""The checks a calibration passes before anything trusts it, shared by files and messages.

Every check takes a :class:`Where` (the file or topic, and the key inside it) and raises
:class:`~binseg_ros.errors.CalibrationError` with ``<file>: <key>: <problem>``, so a user reads
which number of which file to fix. Values come in as parsed YAML or message fields (lists of
numbers) and leave as float64 arrays of the right shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from binseg_ros.calibration.model import DISTORTION_MODELS, CameraInfo
from binseg_ros.errors import CalibrationError

COEFFICIENT_COUNTS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
"""How many distortion coefficients each model takes (as ``sensor_msgs/CameraInfo`` defines them)."""

ROTATION_TOLERANCE = 1e-3
"""Largest ``|RᵀR − I|`` element and ``|det R − 1|`` accepted: six printed decimals pass, a typo fails."""

MAX_TRANSLATION_M = 5.0
"""Cameras of one rig sit within metres of each other; more is millimetres written as metres."""

MIN_SINGULAR_RATIO = 1e-9
"""A homography whose smallest / largest singular value is below this is not invertible."""


@dataclass(frozen=True)
class Where:
    """A place in a calibration source: ``source`` (a file path or ``topic /x``) and a key path."""

    source: str
    key: str = ""

    def at(self, key: str | int) -> Where:
        """The place one level down: ``cameras`` → ``cameras.depth``; an int is a list index."""
        if isinstance(key, int):
            return Where(self.source, f"{self.key}[{key}]")
        return Where(self.source, f"{self.key}.{key}" if self.key else key)

    def error(self, problem: str) -> CalibrationError:
        return CalibrationError(f"{self.source}: {self.key}: {problem}" if self.key else f"{self.source}: {problem}")


def mapping(where: Where, value: Any) -> Mapping[str, Any]:
    """``value`` as a mapping, or an error saying what was there instead."""
    if not isinstance(value, Mapping):
        raise where.error(f"expected a mapping of keys, got {_kind(value)}")
    return value


def required(where: Where, doc: Mapping[str, Any], key: str) -> Any:
    """``doc[key]``, or an error naming the missing key."""
    if key not in doc or doc[key] is None:
        raise where.at(key).error("missing required key")
    return doc[key]


def text(where: Where, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise where.error(f"expected a non-empty string, got {_kind(value)}")
    return value


def positive_int(where: Where, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise where.error(f"expected a positive integer, got {value!r}")
    return int(value)


def numbers(where: Where, value: Any, count: int | None = None) -> np.ndarray:
    """A list of finite numbers (``count`` of them when given) as float64."""
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__len__"):
        raise where.error(f"expected a list of numbers, got {_kind(value)}")
    if count is not None and len(value) != count:
        raise where.error(f"expected {count} numbers, got {len(value)}")
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | float | np.number):
            raise where.at(index).error(f"expected a number, got {item!r}")
        if not math.isfinite(float(item)):
            raise where.at(index).error(f"expected a finite number, got {item!r}")
    return np.asarray(value, dtype=np.float64).reshape(-1)


def matrix_entry(where: Where, value: Any, rows: int | None, cols: int | None) -> np.ndarray:
    """A ``{rows, cols, data}`` entry (ROS ``camera_calibration`` YAML) as a ``rows × cols`` array."""
    entry = mapping(where, value)
    n_rows = positive_int(where.at("rows"), required(where, entry, "rows"))
    n_cols = positive_int(where.at("cols"), required(where, entry, "cols"))
    data = numbers(where.at("data"), required(where, entry, "data"))
    if n_rows * n_cols != data.size:
        raise where.at("data").error(f"rows × cols = {n_rows} × {n_cols} = {n_rows * n_cols}, but data has {data.size}")
    for name, got, expected in (("rows", n_rows, rows), ("cols", n_cols, cols)):
        if expected is not None and got != expected:
            raise where.at(name).error(f"expected {expected}, got {got}")
    return data.reshape(n_rows, n_cols)


def camera_matrix(where: Where, K: np.ndarray) -> np.ndarray:
    """A pinhole camera matrix: positive focal lengths, ``[[fx s cx] [0 fy cy] [0 0 1]]``."""
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise where.error(f"focal lengths must be positive, got fx = {K[0, 0]:g}, fy = {K[1, 1]:g}")
    if K[1, 0] != 0 or not np.allclose(K[2], (0.0, 0.0, 1.0)):
        raise where.error(f"expected [[fx s cx] [0 fy cy] [0 0 1]], got rows 2-3 {K[1].tolist()} {K[2].tolist()}")
    return K


def distortion(where_model: Where, where_d: Where, model: Any, D: np.ndarray) -> tuple[str, np.ndarray]:
    """A known distortion model with its number of coefficients."""
    model = text(where_model, model)
    if model not in DISTORTION_MODELS:
        raise where_model.error(f"unknown distortion model {model!r} (expected {', '.join(DISTORTION_MODELS)})")
    if D.size != COEFFICIENT_COUNTS[model]:
        raise where_d.error(f"{model} takes {COEFFICIENT_COUNTS[model]} coefficients, got {D.size}")
    return model, D.reshape(-1)


def rotation(where: Where, R: np.ndarray, what: str = "rotation") -> np.ndarray:
    """A proper rotation: orthonormal and ``det R = +1``, within :data:`ROTATION_TOLERANCE`."""
    deviation = float(np.abs(R.T @ R - np.eye(3)).max())
    if deviation > ROTATION_TOLERANCE:
        raise where.error(f"{what} is not orthonormal (|R^T R - I| = {deviation:.2g})")
    det = float(np.linalg.det(R))
    if abs(det - 1.0) > ROTATION_TOLERANCE:
        raise where.error(f"{what} has determinant {det:.3g}, expected +1 (a reflection, not a rotation)")
    return R


def transform(where: Where, value: Any) -> np.ndarray:
    """``T_reference_camera``: 16 numbers, row-major, a rigid transform in metres."""
    T = numbers(where, value, 16).reshape(4, 4)
    if not np.allclose(T[3], (0.0, 0.0, 0.0, 1.0), atol=1e-9):
        raise where.error(f"last row must be 0 0 0 1, got {' '.join(f'{v:g}' for v in T[3])}")
    rotation(where, T[:3, :3])
    distance = float(np.linalg.norm(T[:3, 3]))
    if distance > MAX_TRANSLATION_M:
        raise where.error(f"translation is {distance:g} m; expected metres (at most {MAX_TRANSLATION_M:g})")
    return T


def homography(where: Where, value: Any, camera: CameraInfo, reference: CameraInfo) -> np.ndarray:
    """``homography``: 9 numbers, row-major; invertible, and sends the camera's image into view.

    Every corner of the camera's image must map to a finite point on the same side of the
    horizon (the third coordinate keeps one sign), and the mapped image must overlap the
    reference's: otherwise the matrix is singular, reversed or garbage. Returned with that sign
    positive: H and -H are the same homography, but remapping reads w <= 0 as behind the camera.
    """
    H = numbers(where, value, 9).reshape(3, 3)
    singular = np.linalg.svd(H, compute_uv=False)
    if singular[-1] <= MIN_SINGULAR_RATIO * singular[0]:
        raise where.error(f"homography is singular (singular values {', '.join(f'{s:.3g}' for s in singular)})")
    w, h = camera.width - 1, camera.height - 1
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64) @ H.T
    if not (np.all(corners[:, 2] > 0) or np.all(corners[:, 2] < 0)):
        raise where.error(f"homography sends part of the {camera.width}x{camera.height} image to infinity")
    mapped = corners[:, :2] / corners[:, 2:]
    (u0, v0), (u1, v1) = mapped.min(axis=0), mapped.max(axis=0)
    if u1 < 0 or v1 < 0 or u0 > reference.width - 1 or v0 > reference.height - 1:
        raise where.error(
            f"homography maps the whole {camera.width}x{camera.height} image outside the reference's "
            f"{reference.width}x{reference.height} (is it reference → camera instead of camera → reference?)"
        )
    return H if corners[0, 2] > 0 else -H


def camera_info(
    where: dict[str, Where], name: str, size: tuple[Any, Any], K: np.ndarray, model: Any, D: np.ndarray, R: Any, P: Any
) -> CameraInfo:
    """A validated :class:`CameraInfo` from its fields; ``where`` names each field's key (``K``,
    ``D``, ``R``, ``P``, ``model``, ``width``, ``height``) in the source's own spelling."""
    width = positive_int(where["width"], size[0])
    height = positive_int(where["height"], size[1])
    model, D = distortion(where["model"], where["D"], model, D)
    K = camera_matrix(where["K"], K)
    R = np.eye(3) if R is None else rotation(where["R"], R, "rectification")
    return CameraInfo(name=name, width=width, height=height, K=K, distortion_model=model, D=D, R=R, P=P)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]
