"""Registration into the reference camera, checked by round trips: registered MM5 frames are
rendered into the synthetic rig (what its cameras would publish) and registered back."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from binseg_ros.bags.rig_render import render_for_camera, render_into_rig, synthetic_rig
from binseg_ros.calibration.model import CameraInfo, CameraMount, Rig
from binseg_ros.core.frame import Arrival, Frame, FrameSet
from binseg_ros.core.projection import Projector, pixel_rays
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


def test_sets_without_the_reference_camera_are_labelled_with_its_last_frame_id(rig, round_trips):
    """Masks of a fallback set are in the reference camera's geometry: a consumer projecting
    them through TF must get that camera's frame, not the anchor's own."""
    _, published, _ = round_trips[0]
    fresh = Registration(rig)
    before = fresh(_frameset({"depth": published["depth"], "thermal": published["thermal"]}))
    assert {f.frame_id for f in before.frames.values()} == {"depth_optical", "thermal_optical"}  # not heard yet
    fresh(_frameset({"rgb": published["rgb"]}))
    after = fresh(_frameset({"depth": published["depth"], "thermal": published["thermal"]}))
    assert after.anchor.modality == "depth" and after.anchor.resolution == rig.reference_info.resolution
    assert {f.frame_id for f in after.frames.values()} == {"rgb_optical"}


def test_a_camera_registered_pixel_for_pixel_is_labelled_with_the_reference_frame_id(rig, round_trips):
    """Depth aligned to colour by its driver passes through unchanged, and in a set without the
    reference camera it still stands for the reference's frame."""
    _, published, _ = round_trips[0]
    aligned = replace(rig.cameras["depth"], info=rig.reference_info, T_reference_camera=None)
    fresh = Registration(replace(rig, cameras={**rig.cameras, "depth": aligned}))
    depth = cv2.resize(published["depth"], rig.reference_info.resolution[::-1], interpolation=cv2.INTER_NEAREST)
    fresh(_frameset({"rgb": published["rgb"], "depth": depth}))
    alone = fresh(_frameset({"depth": depth})).frames["depth"]
    assert alone.frame_id == "rgb_optical" and alone.data is depth


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
    assert again.frame_id == "rgb_optical"  # no reference frame in the set: its geometry, its last frame_id
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
    assert out.frames["rgb"] is frameset.frames["rgb"] and out.anchor is frameset.anchor
    assert all(out.frames[m].data is frameset.frames[m].data for m in images)  # pixels untouched, not copied
    assert {frame.frame_id for frame in out.frames.values()} == {"rgb_optical"}


def test_a_frame_of_the_wrong_size_is_refused(registration):
    with pytest.raises(InputError, match="depth"):
        registration(_frameset({"depth": np.ones((480, 640), np.float32)}))


def _camera(
    name: str, size: tuple[int, int], focal: float, model: str = "plumb_bob", D: list[float] | None = None
) -> CameraInfo:
    """A camera with its principal point at the image centre (no distortion unless ``D``)."""
    height, width = size
    K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    D = D or [0.0] * (4 if model == "equidistant" else 5)
    return CameraInfo(name, width, height, K, model, np.array(D, dtype=np.float64))


@pytest.mark.parametrize("reference", ["rgb", "depth"])
def test_full_size_depth_places_a_thermal_camera_registered_into_a_smaller_output(reference):
    """Depth that passes through at the reference's size (aligned to colour, or the reference
    itself) places each output pixel's point for a thermal camera on a transform."""
    colour, thermal = _camera("rgb", (480, 640), 525.0), _camera("thermal", (120, 160), 130.0)
    T = np.eye(4)
    T[0, 3] = 0.05  # the thermal camera 5 cm right of the reference
    cameras = {"rgb": CameraMount("rgb", colour), "depth": CameraMount("depth", _camera("depth", (480, 640), 525.0)),
               "thermal": CameraMount("thermal", thermal, T_reference_camera=T)}  # fmt: skip
    registration = Registration(Rig(reference, cameras), plane_distance_m=2.0, output_size=(240, 320))
    ramp = np.tile(7000 + 10 * np.arange(160, dtype=np.float32), (120, 1))  # linear in u: interpolation is exact
    images = {"rgb": np.zeros((480, 640, 3), np.uint8), "depth": np.full((480, 640), 1.5, np.float32), "thermal": ramp}
    out = registration(_frameset(images)).frames["thermal"].data
    assert out.shape == (240, 320)
    # By hand: output column c is full-size column 2c + 0.5; its point at 1.5 m (not the 2 m
    # plane) is 0.05 m further left in the thermal camera.
    u_full = 2 * np.arange(320) + 0.5
    u_thermal = 130 * (1.5 * (u_full - 319.5) / 525 - 0.05) / 1.5 + 79.5
    inside = (u_thermal > 0.5) & (u_thermal < 158.5)
    expected = 7000 + 10 * u_thermal[inside]
    assert np.abs(out[:, inside] - expected).max() < 10 / 32  # cv2.remap samples at 1/32 px


def test_a_colour_camera_behind_a_homography_keeps_its_channels():
    """Thermal reference, RGB by a homography onto part of its view: the seen pixels are the
    RGB's own, the unseen take each channel's mean over the seen."""
    colour, thermal = _camera("rgb", (480, 640), 525.0), _camera("thermal", (120, 160), 130.0)
    H = np.array([[0.25, 0.0, 20.0], [0.0, 0.25, 10.0], [0.0, 0.0, 1.0]])  # thermal (u, v) samples rgb (4u-80, 4v-40)
    rig = Rig("thermal", {"thermal": CameraMount("thermal", thermal), "rgb": CameraMount("rgb", colour, homography=H)})
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    out = Registration(rig).register(Frame("rgb", STAMP, Arrival(STAMP), image)).data
    seen = out[10:, 20:]
    assert np.array_equal(seen, image[:440:4, :560:4])
    mean = seen.reshape(-1, 3).mean(axis=0)
    for unseen in (out[:10], out[:, :20]):
        assert np.abs(unseen.reshape(-1, 3) - mean).max() <= 1  # uint8: the mean truncated


def test_an_equidistant_lens_without_coefficients_is_still_f_theta():
    """All-zero fisheye coefficients are the f·θ lens (OpenCV's fisheye model), not a pinhole."""
    lens = _camera("fisheye", (480, 640), 300.0, "equidistant")
    theta, phi = np.meshgrid(np.deg2rad(np.arange(0, 76, 5)), np.deg2rad(np.arange(0, 360, 30)))
    points = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1).reshape(-1, 3)
    zero = np.zeros(3)
    expected = cv2.fisheye.projectPoints(points[:, None], zero, zero, lens.K, lens.D)[0][:, 0]
    inside = (expected > 0).all(axis=1) & (expected[:, 0] < 639) & (expected[:, 1] < 479)
    u, v, ok = Projector(lens)(*points[inside].T.astype(np.float32))
    assert ok.all() and np.hypot(u - expected[inside, 0], v - expected[inside, 1]).max() < 0.01
    x, y = pixel_rays(lens)  # by hand: the pixel at angle r = |(u - cx, v - cy)| / f sees the ray at angle r
    u_grid, v_grid = np.meshgrid((np.arange(640) - 319.5) / 300, (np.arange(480) - 239.5) / 300)
    r = np.hypot(u_grid, v_grid)
    scale = np.tan(r) / np.where(r > 0, r, 1) + (r == 0)
    assert np.allclose(x, u_grid * scale, atol=1e-6) and np.allclose(y, v_grid * scale, atol=1e-6)


def test_pixel_rays_of_a_wide_lens_project_back_onto_their_pixels():
    lens = _camera("wide", (480, 640), 300.0, "plumb_bob", [-0.3, 0.1, 0.001, 0.001, 0.0])
    x, y = pixel_rays(lens)
    rays = np.stack([x.ravel(), y.ravel(), np.ones(x.size)], -1)
    back = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), lens.K, lens.D)[0][:, 0]
    u, v = np.meshgrid(np.arange(640), np.arange(480))
    assert np.hypot(back[:, 0] - u.ravel(), back[:, 1] - v.ravel()).max() < 0.01  # well under remap's 1/32 px
