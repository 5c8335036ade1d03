"""Registration into the reference camera, checked by round trips: registered MM5 frames are
rendered into the synthetic rig (what its cameras would publish) and registered back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from binseg_ros.bags.rig_render import render_for_camera, render_into_rig, synthetic_rig
from binseg_ros.calibration.model import CameraMount, Rig
from binseg_ros.core.frame import Arrival, Frame, FrameSet
from binseg_ros.core.projection import pixel_rays
from binseg_ros.core.registration import Registration, fill_gaps
from binseg_ros.errors import InputError
from binseg_ros.metrics import boundary_f_measure

STAMP = 1_700_000_000_123_456_789


def _frameset(images: dict[str, np.ndarray], scales: dict[str, float] | None = None) -> FrameSet:
    scales = scales or {}
    frames = {
        m: Frame(m, STAMP, Arrival(STAMP + i, 10.0 + i), images[m], frame_id=f"{m}_optical", scale=scales.get(m, 1.0))
        for i, m in enumerate(("rgb", "depth", "thermal"))
        if m in images
    }
    return FrameSet(next(iter(frames.values())), frames)


def _visible(
    registration: Registration, camera: str, size: tuple[int, int], depth: np.ndarray | None = None
) -> np.ndarray:
    """Reference pixels the camera sees in full (a registered image of ones inside a frame of
    zeros: exactly 1 where seen, below 1 at its edge and where unseen, which takes the mean of the
    seen pixels); ``depth``: the depth camera's image, for cameras registered with depth's help."""
    framed = np.zeros(size, np.float32)
    framed[1:-1, 1:-1] = 1.0
    images = {camera: framed} | ({} if depth is None else {"depth": depth})
    ones = registration(_frameset(images)).frames[camera].data
    return cv2.erode((ones > 0.999).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


@pytest.fixture(scope="module")
def rig() -> Rig:
    return synthetic_rig()


@pytest.fixture(scope="module")
def registration(rig: Rig) -> Registration:
    return Registration(rig)


@pytest.fixture(scope="module")
def round_trips(real_frames, rig, registration):
    """Two real frames: (original, what the rig's cameras publish, registered back)."""
    trips = []
    for frame in real_frames[:2]:
        published = render_into_rig(frame, rig)
        trips.append((frame, published, registration(_frameset(published))))
    return trips


def test_rendering_gives_each_camera_its_own_image(round_trips, rig):
    frame, published, _ = round_trips[0]
    assert published["rgb"] is frame["rgb"]
    for modality in ("depth", "thermal"):
        assert published[modality].shape == rig.resolution(modality)
        assert published[modality].dtype == np.float32
    seen = published["depth"][published["depth"] > 0]
    assert 0.3 < seen.size / published["depth"].size < 0.7  # the depth camera's view is wider than the RGB's
    assert seen.min() > 0.2 and seen.max() < frame["depth"].max() + 0.2


def test_registered_frames_keep_stamps_and_take_the_reference_frame_id(round_trips, rig):
    _, published, registered = round_trips[0]
    original = _frameset(published)
    assert registered.frames["rgb"].data is published["rgb"]
    assert registered.anchor.modality == "rgb" and list(registered.frames) == list(original.frames)
    for modality, frame in registered.frames.items():
        assert frame.resolution == rig.reference_info.resolution
        assert frame.stamp_ns == STAMP and frame.arrival == original.frames[modality].arrival
        assert frame.frame_id == "rgb_optical"
    depth = registered.frames["depth"]
    assert depth.data.dtype == np.float32 and depth.scale == 1.0 and depth.offset == 0.0


def test_the_reference_frame_is_not_copied(registration, round_trips):
    _, published, _ = round_trips[0]
    frameset = _frameset(published)
    assert registration(frameset).frames["rgb"] is frameset.frames["rgb"]


def test_registered_depth_matches_the_original(round_trips):
    for frame, _, registered in round_trips:
        depth, original = registered.frames["depth"].data, frame["depth"]
        both = (depth > 0) & (original > 0)
        error = np.abs(depth - original)[both]
        assert np.median(error) < 0.005  # measured ~1 mm
        assert np.percentile(error, 99) < 0.05
        assert both.sum() / (original > 0).sum() > 0.97  # measured 99.9 % of the original's valid pixels


def test_depth_in_millimetres_registers_like_metres(registration, round_trips):
    _, published, registered = round_trips[0]
    millimetres = np.round(published["depth"] * 1000).astype(np.uint16)
    again = registration(_frameset({"depth": millimetres}, {"depth": 0.001})).frames["depth"]
    assert again.data.dtype == np.float32 and again.scale == 1.0
    assert again.frame_id == "depth_optical"  # no reference frame in the set: keeps its own
    difference = np.abs(again.data - registered.frames["depth"].data)
    assert np.median(difference[again.data > 0]) < 0.001


def test_a_homography_thermal_round_trips(round_trips, registration, rig):
    visible = _visible(registration, "thermal", rig.resolution("thermal"))
    assert 0.7 < visible.mean() < 0.95  # the thermal camera sees most of the RGB's view
    for frame, _, registered in round_trips:
        thermal = registered.frames["thermal"]
        assert thermal.data.dtype == np.float32
        error = np.abs(thermal.data - frame["thermal"])[visible]
        assert error.mean() < 2.0 and np.percentile(error, 99) < 10.0  # counts; measured ~0.7 and ~4
        unseen = ~cv2.dilate(visible.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        # Where the thermal camera does not look: the mean of what it sees (neutral for the
        # network's per-frame thermal standardisation), not 0, which would read as a cold object.
        assert np.ptp(thermal.data[unseen]) == 0
        assert thermal.data[unseen][0] == pytest.approx(thermal.data[visible].mean(), rel=0.01)


def test_a_thermal_camera_label_registers_back_onto_the_original(round_trips, registration, rig):
    visible = _visible(registration, "thermal", rig.resolution("thermal"))
    for frame, published, _ in round_trips:
        truth = frame["label"] > 0
        in_camera = render_for_camera(truth.astype(np.float32), "thermal", rig, frame["depth"])
        label = (in_camera >= 0.5).astype(np.float32)  # a label drawn on the thermal image
        back = registration(_frameset({**published, "thermal": label})).frames["thermal"].data >= 0.5
        predicted, expected = back & visible, truth & visible
        iou = (predicted & expected).sum() / (predicted | expected).sum()
        assert iou >= 0.95  # measured 0.963-0.979 on the four real frames
        assert boundary_f_measure(predicted, expected) >= 0.90


def _two_planes(size: tuple[int, int]) -> np.ndarray:
    depth = np.full(size, 3.0, np.float32)
    depth[150:330, 220:420] = 1.0
    return depth


def test_the_fill_never_invents_depth_across_an_edge(rig, registration):
    original = _two_planes(rig.reference_info.resolution)
    published = render_into_rig({"depth": original}, rig)
    depth = registration(_frameset(published)).frames["depth"].data
    assert not np.any((depth > 1.05) & (depth < 2.85))  # nothing between the planes
    near = (original == 1.0).astype(np.uint8)
    window = np.ones((9, 9), np.uint8)
    edge = (cv2.dilate(near, window) - cv2.erode(near, window)).astype(bool)
    valid = depth > 0
    assert np.allclose(depth[valid & ~edge], original[valid & ~edge], atol=0.01)  # off the edges: its own plane
    assert valid[~edge].mean() > 0.95  # holes: the disocclusion beside the near plane (measured 98.8 % valid)


def test_the_fill_needs_agreeing_neighbours():
    lattice = np.zeros((40, 40), np.float32)
    lattice[::2, 0:19:2] = 1.0
    lattice[::2, 20::2] = 3.0  # column 19 lies between the two surfaces
    filled = fill_gaps(lattice, 2, 0.05)
    assert set(np.unique(filled)) == {0.0, 1.0, 3.0}
    assert (filled[:, :19] == 1.0).all() and (filled[:, 20:] == 3.0).all() and (filled[:, 19] == 0).all()


def _textured_plane(rig: Rig) -> dict[str, np.ndarray]:
    """A tilted plane (1.15 m at the left edge to 2.1 m at the right) with a smooth thermal texture."""
    x, _ = pixel_rays(rig.reference_info)
    depth = (1.5 / (1 - 0.5 * x)).astype(np.float32)  # the plane z = 1.5 + 0.5 x_world
    u, v = np.meshgrid(np.arange(x.shape[1]), np.arange(x.shape[0]))
    thermal = (18000 + 150 * np.sin(u / 17.0) * np.cos(v / 13.0)).astype(np.float32)
    return {"depth": depth, "thermal": thermal}


def test_depth_aided_thermal_round_trips_on_an_occlusion_free_scene(rig):
    thermal_rig = synthetic_rig(thermal_on_transform=True)
    registration = Registration(thermal_rig)
    scene = _textured_plane(thermal_rig)
    published = render_into_rig(scene, thermal_rig)
    registered = registration(_frameset(published)).frames["thermal"].data
    visible = _visible(registration, "thermal", (256, 320), published["depth"])
    assert visible.mean() > 0.7
    error = np.abs(registered - scene["thermal"])[visible]
    assert error.mean() < 0.5 and np.percentile(error, 99) < 2.0  # of a 300-count texture; measured 0.2 and 0.7


def test_without_depth_thermal_falls_back_to_the_plane(rig):
    thermal_rig = synthetic_rig(thermal_on_transform=True)
    registration = Registration(thermal_rig, plane_distance_m=2.0)
    scene = {
        "depth": np.full(rig.reference_info.resolution, 2.0, np.float32),
        "thermal": _textured_plane(rig)["thermal"],
    }
    published = render_into_rig(scene, thermal_rig)
    alone = registration(_frameset({"thermal": published["thermal"]})).frames["thermal"]
    assert alone.frame_id == "thermal_optical" and alone.data.shape == rig.reference_info.resolution
    visible = _visible(registration, "thermal", (256, 320))
    assert visible.mean() > 0.7
    error = np.abs(alone.data - scene["thermal"])[visible]
    assert error.mean() < 0.5 and np.percentile(error, 99) < 2.0


def test_registered_cameras_pass_through(rig, round_trips):
    _, published, _ = round_trips[0]
    size = rig.reference_info.resolution
    cameras = {m: CameraMount(m, rig.reference_info) for m in ("rgb", "depth", "thermal")}
    registration = Registration(Rig("rgb", cameras))
    images = {"rgb": published["rgb"], "depth": np.zeros(size, np.uint16), "thermal": np.ones(size, np.float32)}
    frameset = _frameset(images)
    out = registration(frameset)
    assert all(out.frames[m] is frameset.frames[m] for m in images) and out.anchor is frameset.anchor


def test_a_frame_of_the_wrong_size_is_refused(registration):
    with pytest.raises(InputError, match="depth"):
        registration(_frameset({"depth": np.ones((480, 640), np.float32)}))
