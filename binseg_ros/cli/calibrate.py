"""``binseg calibrate``: a camera → reference homography (thermal → RGB by default) into a rig file.

Point pairs come from a CSV (``--points``) or from a calibration target both cameras see
(``--pattern``, ``--grid``, ``--pairs``); :mod:`binseg_ros.calibration.homography` fits them with
RANSAC, this module prints the fit (matrix, RMS and max reprojection error, inliers) and, with
``--rig``, writes the camera's ``homography`` into the rig file
(:func:`~binseg_ros.calibration.files.update_rig`). Bad input ends with one line and exit 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from binseg_ros.calibration.homography import PATTERNS
from binseg_ros.errors import CalibrationError, ConfigError
from binseg_ros.modalities import MODALITIES

if TYPE_CHECKING:
    from binseg_ros.calibration.homography import HomographyFit, PointPairs
    from binseg_ros.cli.args import Verbs


def grid(text: str) -> tuple[int, int]:
    """``9x6`` → ``(9, 6)`` for argparse."""
    from binseg_ros.calibration.homography import parse_grid

    try:
        return parse_grid(text)
    except CalibrationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def image_pair(text: str) -> tuple[Path, Path]:
    """``thermal1.png:rgb1.png`` → the two paths (camera image first)."""
    parts = text.split(":")
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected CAMERA_IMAGE:REFERENCE_IMAGE, got {text!r}")
    return Path(parts[0]), Path(parts[1])


def register(verbs: Verbs) -> None:
    """Add ``calibrate``."""
    calibrate = verbs.add_parser(
        "calibrate", help="thermal → RGB homography from point pairs or a heated target, written into a rig file"
    )
    source = calibrate.add_mutually_exclusive_group(required=True)
    source.add_argument("--points", type=Path, help="CSV of u_thermal,v_thermal,u_rgb,v_rgb rows (header optional)")
    source.add_argument("--pattern", choices=PATTERNS, help="target seen by both cameras in --pairs")
    calibrate.add_argument("--grid", type=grid, help="COLSxROWS of inner corners or circles (with --pattern)")
    calibrate.add_argument(
        "--pairs", nargs="+", type=image_pair, metavar="CAM:REF", help="image pairs like thermal1.png:rgb1.png"
    )
    calibrate.add_argument("--rig", type=Path, help="rig file to write or update (default: only print)")
    calibrate.add_argument("--camera", default="thermal", choices=MODALITIES, help="the camera mapped (thermal)")
    calibrate.add_argument("--reference", choices=MODALITIES, help="the reference camera (default: the rig's, or rgb)")
    calibrate.add_argument("--camera-info", type=Path, help="the camera's camera_info YAML (copied next to the rig)")
    calibrate.add_argument("--reference-info", type=Path, help="the reference's camera_info YAML (for a new rig)")
    calibrate.add_argument("--ransac-threshold", type=float, default=3.0, help="RANSAC inlier distance, px (3)")
    calibrate.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit the homography, print it and its error, and write it into ``--rig`` when given."""
    from binseg_ros.calibration.files import update_rig
    from binseg_ros.calibration.homography import fit_homography

    pairs = _point_pairs(args)
    fit = fit_homography(pairs, args.ransac_threshold, str(args.points or "pattern images"))
    print(_describe(fit, args.camera, args.ransac_threshold))
    if args.rig is not None:
        rig = update_rig(args.rig, args.camera, fit.H, args.camera_info, args.reference, args.reference_info)
        print(f"wrote {args.rig}: cameras.{args.camera}.homography ({args.camera} → {rig.reference})")
    return 0


def _point_pairs(args: argparse.Namespace) -> PointPairs:
    """The point pairs of ``--points``, or of ``--pattern`` found in ``--pairs`` (sizes checked)."""
    from binseg_ros.calibration.files import load_camera_info
    from binseg_ros.calibration.homography import points_from_images, read_point_pairs

    if args.points is not None:
        if args.grid or args.pairs:
            raise ConfigError("--grid and --pairs go with --pattern, not --points")
        return read_point_pairs(args.points)
    if not args.grid or not args.pairs:
        raise ConfigError("--pattern needs --grid COLSxROWS and --pairs CAM:REF ...")
    pairs = points_from_images(args.pairs, args.pattern, args.grid)
    for flag, info_path, size in (
        ("--camera-info", args.camera_info, pairs.camera_size),
        ("--reference-info", args.reference_info, pairs.reference_size),
    ):
        if info_path is not None and size is not None:
            info = load_camera_info(info_path)
            if (info.width, info.height) != size:
                raise CalibrationError(
                    f"{info_path}: {flag} is {info.width}x{info.height}, but its images are {size[0]}x{size[1]}"
                )
    return pairs


def _describe(fit: HomographyFit, camera: str, threshold: float) -> str:
    rows = "\n".join("  [" + ", ".join(f"{v:12.6g}" for v in row) + "]" for row in fit.H)
    lines = [
        f"{camera} → reference homography from {fit.points} point pairs (RANSAC threshold {threshold:g} px):",
        rows,
        f"reprojection error over {fit.inliers} inliers of {fit.points}: RMS {fit.rms_px:.3f} px, "
        f"max {fit.max_px:.3f} px",
    ]
    if fit.inliers < fit.points / 2:
        lines.append(f"warning: only {fit.inliers} of {fit.points} pairs fit; check the pairs' order and matches")
    return "\n".join(lines)
