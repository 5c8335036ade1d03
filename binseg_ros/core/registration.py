"""Registration: every frame of a set brought into the reference camera's pixels.

:class:`Registration` is built once from a :class:`~binseg_ros.calibration.model.Rig`; all
that depends on the calibration alone is computed then (ray grids, remap maps, the plane
fallback), so a frame costs one remap or one vectorised splat. Per camera, by its mount:

- registered (no transform, no homography), or not in the rig: passes through untouched, the
  same :class:`~binseg_ros.core.frame.Frame` object (so is the reference camera's frame);
- homography: one ``cv2.remap`` with maps precomputed from the inverse homography (applied to
  raw pixels, as the mount defines it): nearest for depth (values are never blended), linear
  otherwise;
- depth with ``T_reference_camera``: the depth camera's undistorted rays × depth, moved into
  the reference camera and projected with its distortion, splatted with a z-buffer (nearest
  surface wins). A depth camera coarser than the reference leaves a sparse lattice of samples,
  which is then made conservative: a sample is dropped where a nearer surface (by more than
  ``depth_jump_ratio``) has a sample within ``fill_radius_px`` (a far surface showing through
  the gaps of a near one), and a gap takes the midpoint of the samples within 1, then 2, ...
  ``fill_radius_px`` pixels (nearest ring first) only when they agree:
  ``max <= (1 + depth_jump_ratio) × min``. Nothing is ever filled across a depth
  discontinuity; what cannot be filled stays 0. Depth 0 or NaN is invalid;
- any other camera with ``T_reference_camera`` (thermal): depth-aided reprojection: each
  reference pixel's 3-D point from the set's *registered* depth is projected into the camera
  and sampled (linear); where depth is 0, or the set has no depth, the point is taken on a
  fronto-parallel plane ``plane_distance_m`` in front of the reference camera (a precomputed map).
  A point hidden from that camera by a nearer surface still samples the nearer surface.

Output data: depth reprojected through ``T`` is float32 metres (scale 1.0, offset 0.0);
depth through a homography keeps its wire type, scale and offset (nearest copies values);
thermal comes out float32 counts with its scale and offset (interpolating in uint16 would
round its few tens of counts of contrast); RGB stays uint8. Pixels a camera does not see are
0 (linear interpolation blends the one-pixel fringe of its view toward 0). Registered frames
carry the reference camera's ``frame_id`` when the set holds the reference camera's frame
(else their own); stamps and arrivals are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import cv2
import numpy as np

from binseg_ros.calibration.model import CameraMount, Rig
from binseg_ros.core.frame import Frame, FrameSet
from binseg_ros.core.projection import RayCast, fixed_point_maps, homography_maps, pixel_scaling, scaled_camera
from binseg_ros.errors import ConfigError, InputError
from binseg_ros.modalities import MODALITIES

DEPTH = "depth"
FAR = np.float32(1e6)
"""Stands in for 'no sample' where a minimum filter runs (finite: no overflow, no inf arithmetic)."""

Step = Callable[[Frame, "np.ndarray | None"], tuple[np.ndarray, float, float]]
"""One camera's registration: (frame, registered depth in metres or None) → (data, scale, offset)."""


def depth_metres(frame: Frame) -> np.ndarray:
    """A depth frame as float32 metres, 0 where the sensor reported 0 (invalid)."""
    if frame.data.dtype == np.float32 and frame.scale == 1.0 and frame.offset == 0.0:
        return frame.data
    metres = frame.data * np.float32(frame.scale)
    if frame.offset != 0.0:
        metres = np.where(frame.data == 0, np.float32(0), metres + np.float32(frame.offset))
    return metres.astype(np.float32, copy=False)


def _window(radius: int) -> np.ndarray:
    return np.ones((2 * radius + 1, 2 * radius + 1), dtype=np.uint8)


def _near(depth: np.ndarray) -> np.ndarray:
    """``depth`` with :data:`FAR` where it is 0, for minimum filters (arithmetic: no branches)."""
    return depth + cv2.threshold(depth, 0, float(FAR), cv2.THRESH_BINARY_INV)[1]


def drop_hidden(depth: np.ndarray, radius: int, jump_ratio: float) -> np.ndarray:
    """``depth`` without the samples that have a nearer surface's sample within ``radius`` pixels."""
    nearest = cv2.erode(_near(depth), _window(radius))
    return depth * (depth <= nearest * np.float32(1 + jump_ratio))


def fill_gaps(depth: np.ndarray, radius: int, jump_ratio: float) -> np.ndarray:
    """Fill 0 pixels from the valid samples within 1, then 2, ... ``radius`` pixels, only where
    those samples agree within ``jump_ratio`` (never across a discontinuity).

    The value is the midpoint of the samples' range (their min and max, two morphology passes,
    so no masked indexing): on a slanted surface the centre of the ramp, and within
    ``jump_ratio / 2`` of every sample around. Ring r's window grows from ring r-1's by one 3×3 pass.
    """
    lo, hi = _near(depth), depth
    empty = depth == 0
    out = depth.copy()
    ratio, step = np.float32(1 + jump_ratio), _window(1)
    for _ in range(radius):
        lo, hi = cv2.erode(lo, step), cv2.dilate(hi, step)
        take = empty & (hi > 0) & (hi <= lo * ratio)
        out += (lo + hi) * (np.float32(0.5) * take)
        empty &= ~take
    return out


def _unseen(map_x: np.ndarray, map_y: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """Flat indices of the reference pixels whose sample lies outside the source image (or nowhere: NaN)."""
    height, width = source
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return np.flatnonzero(~inside)


def _neutral_fill(image: np.ndarray, unseen: np.ndarray) -> np.ndarray:
    """Pixels a non-depth camera does not see (flat indices ``unseen``) take the mean of those it sees.

    0 would be an extreme value to the network's per-frame thermal standardisation (a cold
    object filling the edge of the view); the mean leaves the frame's mean unchanged.
    """
    pixels = image.shape[0] * image.shape[1]
    seen = pixels - unseen.size
    if unseen.size and seen:
        flat = image.reshape(pixels, -1)  # one row per pixel: ``unseen`` indexes pixels, not samples
        total = flat.sum(axis=0, dtype=np.float64) - flat[unseen].sum(axis=0, dtype=np.float64)
        flat[unseen] = total / seen
    return image


class _Remap:
    """A fixed remap: homography-mounted cameras, and the plane fallback of depth-aided ones."""

    def __init__(self, map_x: np.ndarray, map_y: np.ndarray, nearest: bool, source: tuple[int, int]) -> None:
        self._maps = fixed_point_maps(map_x, map_y, nearest)
        self._interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        self._nearest = nearest
        self._unseen = _unseen(map_x, map_y, source)

    def __call__(self, frame: Frame, depth: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
        data = frame.data if self._nearest or frame.data.dtype != np.uint16 else frame.data.astype(np.float32)
        map1, map2 = self._maps
        out = cv2.remap(data, map1, map2, self._interpolation, borderValue=0)
        if not self._nearest:  # depth keeps 0 = invalid where its camera does not see
            out = _neutral_fill(out, self._unseen)
        return out, frame.scale, frame.offset


class _DepthSplat:
    """Depth with ``T_reference_camera``: reprojection with a z-buffer, then the conservative fill.

    ``fill_radius_px`` should cover the depth camera's sample spacing in reference pixels (about
    the ratio of the focal lengths: 525 / 213 ≈ 2.5 in the synthetic rig), or gaps remain and a
    far surface can show through a near one; 0 turns off both the hidden-sample drop and the fill.
    """

    def __init__(self, cast: RayCast, fill_radius_px: int, jump_ratio: float) -> None:
        self._cast, self._radius, self._ratio = cast, fill_radius_px, jump_ratio

    def __call__(self, frame: Frame, depth: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
        splat = self._cast.splat(depth_metres(frame))
        if self._radius:
            splat = fill_gaps(drop_hidden(splat, self._radius, self._ratio), self._radius, self._ratio)
        return splat, 1.0, 0.0


class _DepthAided:
    """A non-depth camera with ``T_reference_camera``: sampled at each reference pixel's 3-D point."""

    def __init__(self, cast: RayCast, plane_distance_m: float, source: tuple[int, int]) -> None:
        self._cast = cast
        self._plane = cast.maps(plane_distance_m)
        self._source = source
        self._fallback = _Remap(*self._plane, nearest=False, source=self._source)

    def __call__(self, frame: Frame, depth: np.ndarray | None) -> tuple[np.ndarray, float, float]:
        if depth is None:
            return self._fallback(frame)
        height, width = self._cast.src_size
        if depth.shape != (height, width):  # depth passed through at the reference's full size
            depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)  # never blend across edges
        map_x, map_y = self._cast.maps(depth)
        missing = ~(depth > 0)  # 0, and NaN (32FC1's invalid)
        np.copyto(map_x, self._plane[0], where=missing)
        np.copyto(map_y, self._plane[1], where=missing)
        data = frame.data.astype(np.float32) if frame.data.dtype == np.uint16 else frame.data
        out = cv2.remap(data, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)
        return _neutral_fill(out, _unseen(map_x, map_y, self._source)), frame.scale, frame.offset


class Registration:
    """Frames of a set → the reference camera's pixels (see the module docstring for the rules).

    ``plane_distance_m``: the fallback plane of depth-aided reprojection; ``fill_radius_px``:
    how far a registered depth sample may fill a gap (0: no fill); ``depth_jump_ratio``: the
    relative depth difference that counts as a discontinuity (0.05: 5 cm at 1 m, 15 cm at 3 m).
    """

    def __init__(
        self,
        rig: Rig,
        plane_distance_m: float = 2.0,
        fill_radius_px: int = 2,
        depth_jump_ratio: float = 0.05,
        output_size: tuple[int, int] | None = None,
    ) -> None:
        """``output_size``: register into the reference camera scaled to this (height, width),
        e.g. the network's input size, which preprocessing would resize to anyway: a quarter of
        the pixels to splat, fill and remap at 240×320. The reference camera's own frames pass
        through at full size, and masks are still made at the reference resolution."""
        if not plane_distance_m > 0:
            raise ConfigError(f"registration plane_distance_m must be > 0, got {plane_distance_m}")
        if fill_radius_px < 0 or not 0 < depth_jump_ratio < 1:
            raise ConfigError(
                f"registration needs fill_radius_px >= 0 and 0 < depth_jump_ratio < 1, "
                f"got {fill_radius_px} and {depth_jump_ratio}"
            )
        self.rig = rig
        self.reference_size = rig.reference_info.resolution  # where masks are made
        self.size = output_size or self.reference_size  # where registered frames land
        self._reference = scaled_camera(rig.reference_info, self.size)
        self._steps: dict[str, Step] = {}
        self._reference_frame_id: str | None = None  # the reference camera's, as last heard from
        for modality, mount in rig.cameras.items():
            if modality != rig.reference and not mount.registered:
                self._steps[modality] = self._step(mount, plane_distance_m, fill_radius_px, depth_jump_ratio)

    @property
    def resolutions(self) -> dict[str, tuple[int, int]]:
        """The (height, width) each modality's camera publishes: what the synchroniser accepts."""
        return {modality: self.rig.resolution(modality) for modality in MODALITIES}

    def _step(self, mount: CameraMount, plane_m: float, radius: int, ratio: float) -> Step:
        reference = self._reference
        if mount.homography is not None:
            to_output = pixel_scaling(self.rig.reference_info.resolution, self.size)
            inverse = np.linalg.inv(to_output @ np.asarray(mount.homography, dtype=np.float64))
            return _Remap(*homography_maps(inverse, self.size), mount.modality == DEPTH, mount.info.resolution)
        T = np.asarray(mount.T_reference_camera, dtype=np.float64)
        if mount.modality == DEPTH:
            return _DepthSplat(RayCast(mount.info, reference, T), radius, ratio)
        return _DepthAided(RayCast(reference, mount.info, np.linalg.inv(T)), plane_m, mount.info.resolution)

    def register(self, frame: Frame, depth: np.ndarray | None = None, frame_id: str | None = None) -> Frame:
        """One frame in the reference camera's pixels (itself if its camera is registered).

        ``depth``: the set's registered depth in metres, for depth-aided cameras (None: the plane).
        ``frame_id``: the output's (None: the frame's own).
        """
        step = self._steps.get(frame.modality)
        if step is None:  # the reference, or a camera registered pixel for pixel: its pixels stay as they are
            return frame if frame_id in (None, frame.frame_id) else replace(frame, frame_id=frame_id)
        expected = self.rig.resolution(frame.modality)
        if frame.resolution != expected:
            raise InputError(f"{frame.modality}: the rig's camera is {expected[1]}x{expected[0]}, "
                             f"the frame {frame.resolution[1]}x{frame.resolution[0]}")  # fmt: skip
        data, scale, offset = step(frame, depth)
        return replace(frame, data=data, frame_id=frame.frame_id if frame_id is None else frame_id, scale=scale,
                       offset=offset)  # fmt: skip

    def __call__(self, frameset: FrameSet) -> FrameSet:
        """The set with every frame in the reference camera's pixels and frame_id; stamps and arrivals kept.

        A set without the reference camera (its camera dead or left out) still lands in its
        geometry, so it takes the frame_id that camera last sent; before it has sent any, the
        frames keep their own.
        """
        frames = frameset.frames
        reference = frames.get(self.rig.reference)
        if reference is not None:
            self._reference_frame_id = reference.frame_id
        frame_id = self._reference_frame_id
        out: dict[str, Frame] = {}
        depth = None
        for modality in sorted(frames, key=lambda m: m != DEPTH):  # depth first: depth-aided cameras need it
            out[modality] = self.register(frames[modality], depth, frame_id)
            if modality == DEPTH:
                depth = depth_metres(out[DEPTH])
        return FrameSet(out[frameset.anchor.modality], {m: out[m] for m in frames})
