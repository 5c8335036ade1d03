"""Rig calibration: the shipped example, file round trips, one test per kind of bad rig file
(each naming the file and the key), ``camera_info`` messages, and ``binseg calibrate`` from a
CSV and from rendered target images (a known homography recovered)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from conftest import REPO

from binseg_ros.calibration.files import (
    camera_info_from_message,
    load_camera_info,
    load_rig,
    save_camera_info,
    save_rig,
)
from binseg_ros.calibration.homography import _upright_order, reprojection_errors
from binseg_ros.cli import main
from binseg_ros.core.frame import Arrival, Frame
from binseg_ros.core.registration import Registration
from binseg_ros.errors import BinsegError, CalibrationError

EXAMPLE = REPO / "calibration" / "example"
H_TRUE = np.array(yaml.safe_load((EXAMPLE / "rig.yaml").read_text())["cameras"]["thermal"]["homography"]).reshape(3, 3)
DELETE = object()


@pytest.fixture
def rig_dir(tmp_path: Path) -> Path:
    """A copy of the example rig to break."""
    for path in EXAMPLE.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def edit(path: Path, key: str, value: Any) -> None:
    """Set (or, with DELETE, remove) the dotted ``key`` of the YAML file at ``path``."""
    doc = yaml.safe_load(path.read_text())
    *parents, last = key.split(".")
    node = doc
    for part in parents:
        node = node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_the_example_rig_loads():
    rig = load_rig(EXAMPLE / "rig.yaml")
    assert rig.reference == "rgb" and list(rig.cameras) == ["rgb", "depth", "thermal"]
    assert rig.resolution("rgb") == (480, 640) and rig.resolution("depth") == (240, 424)
    assert rig.resolution("thermal") == (256, 320)
    assert rig.cameras["rgb"].registered and not rig.cameras["depth"].registered
    assert (
        rig.reference_info.K[0, 0] == pytest.approx(525, abs=1) and rig.reference_info.distortion_model == "plumb_bob"
    )
    T = rig.cameras["depth"].T_reference_camera
    assert T is not None and np.linalg.norm(T[:3, 3]) == pytest.approx(0.06, abs=0.005)
    angle = np.degrees(np.arccos((np.trace(T[:3, :3]) - 1) / 2))
    assert 1.5 < angle < 2.5
    H = rig.cameras["thermal"].homography
    assert H is not None and rig.cameras["thermal"].T_reference_camera is None
    centre = H @ [159.5, 127.5, 1.0]
    assert 0 < centre[0] / centre[2] < 640 and 0 < centre[1] / centre[2] < 480


def test_save_then_load_gives_the_same_rig(tmp_path):
    rig = load_rig(EXAMPLE / "rig.yaml")
    save_rig(rig, tmp_path / "copy" / "rig.yaml")
    again = load_rig(tmp_path / "copy" / "rig.yaml")
    assert again.reference == rig.reference and list(again.cameras) == list(rig.cameras)
    for modality, mount in rig.cameras.items():
        other = again.cameras[modality]
        for name in ("T_reference_camera", "homography"):
            a, b = getattr(mount, name), getattr(other, name)
            assert (a is None and b is None) or np.array_equal(a, b)
        for name in ("name", "width", "height", "distortion_model"):
            assert getattr(mount.info, name) == getattr(other.info, name)
        for name in ("K", "D", "R", "P"):
            assert np.array_equal(getattr(mount.info, name), getattr(other.info, name))
    save_camera_info(rig.reference_info, tmp_path / "rgb.yaml")
    assert np.array_equal(load_camera_info(tmp_path / "rgb.yaml").K, rig.reference_info.K)


IDENTITY_16 = [1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
REFLECTION = [1.0, 0, 0, 0.06, 0, 1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1]
STRETCHED = [1.2, 0, 0, 0.06, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
SINGULAR = [1.0, 2, 3, 2, 4, 6, 0, 0, 1]
IN_MM = [1.0, 0, 0, 60, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
NAN_H = [1, 0, float("nan"), 0, 1, 0, 0, 0, 1]
NEGATIVE_K = [-525.0, 0, 320, 0, 525, 240, 0, 0, 1]
D4 = {"rows": 1, "cols": 4, "data": [0.0] * 4}
BAD_RIGS = {  # kind: (file edited and named, key edited, value, key named, problem)
    "missing key": ("rig", "cameras.depth.camera_info", DELETE, "cameras.depth.camera_info", "missing"),
    "missing key in camera_info": ("depth", "camera_matrix", DELETE, "camera_matrix", "missing"),
    "bad YAML": ("rig", None, "reference: rgb\ncameras: {rgb: [\n", "line 3", "invalid YAML"),
    "wrong shape": ("rig", "cameras.depth.T_reference_camera", [1.0] * 12, "T_reference_camera", "16"),
    "rows x cols": ("rgb", "camera_matrix.rows", 2, "camera_matrix.data", "rows × cols"),
    "non-finite": ("rig", "cameras.thermal.homography", NAN_H, "cameras.thermal.homography[2]", "finite"),
    "negative focal": ("rgb", "camera_matrix.data", NEGATIVE_K, "camera_matrix", "focal"),
    "det -1": (
        "rig",
        "cameras.depth.T_reference_camera",
        REFLECTION,
        "cameras.depth.T_reference_camera",
        "determinant",
    ),
    "not orthonormal": (
        "rig",
        "cameras.depth.T_reference_camera",
        STRETCHED,
        "cameras.depth.T_reference_camera",
        "not orthonormal (|R^T R - I| = 0.44)",
    ),
    "unknown distortion model": ("thermal", "distortion_model", "fisheye62", "distortion_model", "unknown"),
    "coefficient count": ("depth", "distortion_coefficients", D4, "distortion_coefficients", "plumb_bob takes 5"),
    "singular homography": ("rig", "cameras.thermal.homography", SINGULAR, "cameras.thermal.homography", "singular"),
    "both transforms": ("rig", "cameras.depth.homography", H_TRUE.ravel().tolist(), "cameras.depth", "both"),
    "unknown modality": ("rig", "cameras.lidar", {"camera_info": "depth.yaml"}, "cameras.lidar", "unknown"),
    "missing reference": ("rig", "cameras.rgb", DELETE, "reference", "'rgb' is not among cameras"),
    "unregistered at another size": ("rig", "cameras.thermal.homography", DELETE, "cameras.thermal", "is 320x256"),
    "missing camera_info file": ("rig", "cameras.depth.camera_info", "no.yaml", "cameras.depth.camera_info", "no such"),
    "translation in mm": ("rig", "cameras.depth.T_reference_camera", IN_MM, "T_reference_camera", "metres"),
    "reference with a transform": ("rig", "cameras.rgb.T_reference_camera", IDENTITY_16, "cameras.rgb", "to itself"),
    "typo in a camera key": ("rig", "cameras.thermal.homograpy", [1.0] * 9, "cameras.thermal.homograpy", "unknown key"),
}


@pytest.mark.parametrize("kind", list(BAD_RIGS))
def test_a_bad_rig_file_names_the_file_and_the_key(rig_dir, kind):
    edited, key, value, named_key, problem = BAD_RIGS[kind]
    if key is None:
        (rig_dir / f"{edited}.yaml").write_text(value)
    else:
        edit(rig_dir / f"{edited}.yaml", key, value)
    with pytest.raises(CalibrationError) as caught:
        load_rig(rig_dir / "rig.yaml")
    message = str(caught.value)
    assert isinstance(caught.value, BinsegError)
    assert message.startswith(f"{rig_dir / edited}.yaml: "), message
    assert named_key in message and problem in message, message


def test_a_homography_written_with_the_other_sign_registers_the_same(rig_dir):
    """H and -H are one homography (pixels are divided by w), so -H is valid and must register."""
    edit(rig_dir / "rig.yaml", "cameras.thermal.homography", [float(v) for v in -H_TRUE.ravel()])
    rig = load_rig(rig_dir / "rig.yaml")
    u, v = np.meshgrid(np.arange(320, dtype=np.float32), np.arange(256, dtype=np.float32))
    thermal = 7000 + 3 * u + 2 * v
    registered = Registration(rig).register(Frame("thermal", 0, Arrival(0), thermal)).data
    expected = cv2.warpPerspective(thermal, -H_TRUE, (640, 480), flags=cv2.INTER_LINEAR)
    inside = cv2.erode(cv2.warpPerspective(np.ones_like(thermal), -H_TRUE, (640, 480)), np.ones((3, 3))) == 1
    assert inside.mean() > 0.5
    assert np.abs(registered - expected)[inside].max() < 5 / 32  # a 3 + 2 count/px ramp sampled at 1/32 px


def camera_info_message(info_path: Path) -> Any:
    from sensor_msgs.msg import CameraInfo

    doc = yaml.safe_load(info_path.read_text())
    msg = CameraInfo(width=doc["image_width"], height=doc["image_height"], distortion_model=doc["distortion_model"])
    msg.header.frame_id = "head_rgb_optical"
    msg.k = [float(v) for v in doc["camera_matrix"]["data"]]
    msg.d = [float(v) for v in doc["distortion_coefficients"]["data"]]
    msg.p = [float(v) for v in doc["projection_matrix"]["data"]]  # r left all zero, as some drivers do
    return msg


def test_camera_info_from_a_message_matches_the_file():
    from_file = load_camera_info(EXAMPLE / "rgb.yaml")
    info = camera_info_from_message(camera_info_message(EXAMPLE / "rgb.yaml"), topic="/rgb/camera_info")
    assert (info.name, info.resolution, info.distortion_model) == ("head_rgb_optical", (480, 640), "plumb_bob")
    for name in ("K", "D", "R", "P"):
        assert np.array_equal(getattr(info, name), getattr(from_file, name)), name


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [("k", [0.0] * 9, "k: focal lengths must be positive"), ("d", [0.0] * 4, "d: plumb_bob takes 5")],
)
def test_a_bad_camera_info_message_names_the_topic_and_the_field(field, value, problem):
    msg = camera_info_message(EXAMPLE / "rgb.yaml")
    setattr(msg, field, value)
    with pytest.raises(CalibrationError, match=rf"^topic /rgb/camera_info: {problem}"):
        camera_info_from_message(msg, topic="/rgb/camera_info")
    msg.width = 0
    with pytest.raises(CalibrationError, match="camera_info message \\(frame_id 'head_rgb_optical'\\): width"):
        camera_info_from_message(msg)


def run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def rig_args(rig_path: Path) -> tuple[Any, ...]:
    """Write the thermal homography into ``rig_path``, with the example rig's camera_info files."""
    return ("--rig", rig_path, "--reference-info", EXAMPLE / "rgb.yaml", "--camera-info", EXAMPLE / "thermal.yaml")


def assert_recovers(H: np.ndarray, tolerance_px: float) -> None:
    u, v = np.meshgrid(np.linspace(0, 319, 9), np.linspace(0, 255, 9))
    grid = np.c_[u.ravel(), v.ravel()]
    truth = np.c_[grid, np.ones(len(grid))] @ H_TRUE.T
    assert reprojection_errors(H, grid, truth[:, :2] / truth[:, 2:]).max() < tolerance_px


def test_calibrate_from_a_csv_recovers_the_homography_and_writes_a_rig(tmp_path, capsys):
    rng = np.random.default_rng(0)
    thermal = rng.uniform((0, 0), (320, 256), size=(60, 2))
    mapped = np.c_[thermal, np.ones(60)] @ H_TRUE.T
    rgb = mapped[:, :2] / mapped[:, 2:] + rng.normal(0, 0.3, size=(60, 2))
    rgb[:5] += 40  # outliers: RANSAC leaves them out
    lines = ["u_thermal,v_thermal,u_rgb,v_rgb"] + [",".join(f"{v:.3f}" for v in row) for row in np.c_[thermal, rgb]]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    rig_path = tmp_path / "out" / "rig.yaml"
    code, out, err = run(capsys, "calibrate", "--points", tmp_path / "pairs.csv", *rig_args(rig_path))
    assert code == 0, err
    assert "over 55 inliers of 60" in out and f"wrote {rig_path}: cameras.thermal.homography (thermal → rgb)" in out
    rms = float(out.split("RMS ")[1].split(" px")[0])
    assert 0.2 < rms < 0.6
    rig = load_rig(rig_path)
    assert sorted(rig.cameras) == ["rgb", "thermal"] and (tmp_path / "out" / "thermal.yaml").is_file()
    assert rig.cameras["thermal"].homography is not None
    assert_recovers(rig.cameras["thermal"].homography, 0.5)


def test_calibrate_updates_an_existing_rig_and_keeps_its_other_cameras(rig_dir, tmp_path, capsys):
    thermal = np.random.default_rng(1).uniform((0, 0), (320, 256), size=(20, 2))
    shifted = H_TRUE + np.array([[0, 0, 5], [0, 0, -3], [0, 0, 0]])
    mapped = np.c_[thermal, np.ones(20)] @ shifted.T
    rows = [",".join(map(str, row)) for row in np.c_[thermal, mapped[:, :2] / mapped[:, 2:]]]
    (tmp_path / "pairs.csv").write_text("\n".join(rows))  # no header
    code, _, err = run(capsys, "calibrate", "--points", tmp_path / "pairs.csv", "--rig", rig_dir / "rig.yaml")
    assert code == 0, err
    rig = load_rig(rig_dir / "rig.yaml")
    assert rig.cameras["depth"].T_reference_camera is not None
    assert np.allclose(rig.cameras["thermal"].homography, shifted, atol=1e-6)


def test_a_rejected_homography_leaves_the_rig_as_it_was(rig_dir, tmp_path, capsys):
    before = {p.name: p.read_text() for p in rig_dir.glob("*.yaml")}
    rows = [f"{u},{v},{u + 2000},{v}" for u, v in [(0, 0), (300, 10), (20, 250), (310, 240), (150, 120)]]
    (tmp_path / "pairs.csv").write_text("\n".join(rows))
    other = tmp_path / "info" / "flir.yaml"
    other.parent.mkdir()
    shutil.copy(EXAMPLE / "thermal.yaml", other)
    code, _, err = run(capsys, "calibrate", "--points", tmp_path / "pairs.csv", "--rig", rig_dir / "rig.yaml",
                       "--camera-info", other)  # fmt: skip
    assert code == 2 and "cameras.thermal.homography: homography maps the whole 320x256 image outside" in err
    assert {p.name: p.read_text() for p in rig_dir.glob("*.yaml")} == before


def render_views(pattern: str, shift: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """An RGB view of a target and the thermal view of it (warm parts bright, 16-bit counts)."""
    board = np.full((480, 640), 255, np.uint8)
    if pattern == "checkerboard":  # 10 x 7 squares of 32 px: 9 x 6 inner corners
        for row in range(7):
            for col in range(10):
                if (row + col) % 2 == 0:
                    board[128 + 32 * row : 160 + 32 * row, 160 + 32 * col : 192 + 32 * col] = 0
    else:  # 7 x 5 dark circles
        for row in range(5):
            for col in range(7):
                cv2.circle(board, (200 + 40 * col, 150 + 40 * row), 11, 0, -1, cv2.LINE_AA)
    tilt = np.array([[1.0, 0.05, shift[0]], [-0.04, 1.0, shift[1]], [1e-4, -5e-5, 1.0]])
    rgb = cv2.warpPerspective(board, tilt, (640, 480), borderValue=255)
    hot = 255.0 - cv2.GaussianBlur(cv2.warpPerspective(rgb, np.linalg.inv(H_TRUE), (320, 256)), (3, 3), 0)
    thermal = (29000 + 12 * hot + np.random.default_rng(2).normal(0, 8, hot.shape)).astype(np.uint16)
    return cv2.cvtColor(rgb, cv2.COLOR_GRAY2BGR), thermal


@pytest.mark.parametrize(("pattern", "grid"), [("checkerboard", "9x6"), ("circles", "7x5")])
def test_calibrate_from_target_images_recovers_the_homography(tmp_path, capsys, pattern, grid):
    pairs = []
    for index, shift in enumerate(((0.0, 0.0), (-30.0, 25.0))):
        rgb, thermal = render_views(pattern, shift)
        cv2.imwrite(str(tmp_path / f"rgb{index}.png"), rgb)
        cv2.imwrite(str(tmp_path / f"thermal{index}.png"), thermal)
        pairs.append(f"{tmp_path / f'thermal{index}.png'}:{tmp_path / f'rgb{index}.png'}")
    rig_path = tmp_path / "rig.yaml"
    code, out, err = run(
        capsys, "calibrate", "--pattern", pattern, "--grid", grid, "--pairs", *pairs, *rig_args(rig_path)
    )
    assert code == 0, err
    assert float(out.split("RMS ")[1].split(" px")[0]) < 0.5
    homography = load_rig(rig_path).cameras["thermal"].homography
    assert homography is not None
    assert_recovers(homography, 1.0)


@pytest.mark.parametrize("grid", [(9, 6), (6, 6)])
def test_a_symmetric_target_numbered_from_another_corner_is_renumbered(grid):
    """OpenCV may number a symmetric grid from any corner that looks alike; pairs must still match."""
    cols, rows = grid
    u, v = np.meshgrid(200 + 30 * np.arange(cols), 150 + 30 * np.arange(rows))
    reference = np.c_[u.ravel(), v.ravel()].astype(np.float64)
    back = np.c_[reference, np.ones(len(reference))] @ np.linalg.inv(H_TRUE).T
    camera = back[:, :2] / back[:, 2:]
    index = np.arange(cols * rows).reshape(rows, cols)
    numberings = [index[::-1, ::-1], index[:, ::-1]] + ([index.T, index.T[::-1]] if cols == rows else [])
    for numbering in numberings:
        assert np.allclose(_upright_order(camera[numbering.ravel()], reference, grid), camera)


@pytest.mark.parametrize(
    ("csv", "argv", "message"),
    [
        ("1,2,3,4\n5,6,7,8\n9,1,2,3\n", [], "need at least 4 point pairs, got 3"),
        ("1,2,3,4\n5,6,7\n", [], "pairs.csv: line 2: expected 4 values"),
        ("1,2,3,4\n5,six,7,8\n", [], "pairs.csv: line 2: expected numbers"),
        (None, [], "pairs.csv: cannot read point pairs"),
        ("0,0,0,0\n1,1,1,1\n2,2,2,2\n3,3,3,3\n4,4,4,4\n", [], "all on one line"),
        (
            "",
            ["--pattern", "checkerboard", "--grid", "9x6", "--pairs", "missing.png:rgb.png"],
            "missing.png: cannot read",
        ),
        ("", ["--pattern", "circles", "--grid", "7x5", "--pairs", "blank.png:blank.png"], "circles 7x5 not found"),
        ("", ["--pattern", "circles", "--grid", "7x5"], "--pattern needs --grid COLSxROWS and --pairs"),
        ("", ["--grid", "7", "--points", "x"], "argument --grid: grid must look like COLSxROWS"),
        ("", ["--camera", "rgb", "--rig", "rig.yaml", "--reference-info", str(EXAMPLE / "rgb.yaml")], "reference"),
    ],
)
def test_calibrate_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch, csv, argv, message):
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("blank.png", np.full((256, 320), 128, np.uint8))
    if csv is not None:
        Path("pairs.csv").write_text(
            csv or "\n".join(f"{u},{v},{u * 2},{v * 2}" for u, v in [(0, 0), (9, 1), (3, 8), (7, 7)])
        )
    source = [] if "--pattern" in argv or "--points" in argv else ["--points", "pairs.csv"]
    code, _, err = run(capsys, "calibrate", *source, *argv)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 or "usage:" in err, err
    assert message in lines[-1], err
    assert not Path("rig.yaml").exists()
