"""Reading registered RGB / depth / thermal / label folders (the MM5 layout and user data).

A dataset root holds one folder per modality with files named by frame id (``RGB/12.png``,
``Depth/12.png``, ...). Frames come back in the sensor units :mod:`binseg_ros.preprocess`
expects, so dataset frames and live ROS frames go through the same code afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from binseg_ros.errors import InputError


@dataclass(frozen=True)
class FolderLayout:
    """Folder names and units of a dataset; the defaults are MM5's."""

    rgb: str = "RGB"
    depth: str = "Depth"
    thermal: str = "Thermal"
    labels: str = "Class_Annotations"
    depth_scale_m: float = 0.001
    """Metres per depth count (MM5 stores uint16 millimetres)."""
    suffix: str = ".png"


def list_ids(root: str | Path, layout: FolderLayout = FolderLayout()) -> list[str]:
    """Frame ids present in the RGB folder, in numeric order where ids are numbers."""
    folder = Path(root) / layout.rgb
    if not folder.is_dir():
        raise InputError(f"dataset folder {folder} does not exist")
    stems = [p.stem for p in folder.iterdir() if p.suffix == layout.suffix]
    return sorted(stems, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"cannot read image {path}")
    return image


def load_frame(root: str | Path, frame_id: str, layout: FolderLayout = FolderLayout()) -> dict[str, np.ndarray]:
    """One frame: ``rgb`` uint8 RGB, ``depth`` float32 metres, ``thermal`` float32 counts, ``label`` uint8."""
    root = Path(root)
    name = f"{frame_id}{layout.suffix}"
    bgr = _read(root / layout.rgb / name)
    return {
        "rgb": cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
        "depth": _read(root / layout.depth / name).astype(np.float32) * layout.depth_scale_m,
        "thermal": _read(root / layout.thermal / name).astype(np.float32),
        "label": _read(root / layout.labels / name),
    }


SAMPLE = Path(__file__).resolve().parent / "sample"
"""Four MM5 frames shipped with the package (see its NOTICE): the demo's and the benches' input."""

CAMERA_ENCODING = {"rgb": "rgb8", "depth": "16UC1", "thermal": "mono16"}  # what camera drivers publish


def camera_frames(frame: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A dataset frame in sensor units → the arrays a camera driver would publish."""
    return {
        "rgb": frame["rgb"],
        "depth": np.round(frame["depth"] * 1000).astype(np.uint16),
        "thermal": frame["thermal"].astype(np.uint16),
    }


@dataclass(frozen=True)
class LabelMap:
    """Which label ids are foreground. ``None`` = every id > 0 (the ``objects`` task)."""

    positive: frozenset[int] | None = None

    def binary(self, label: np.ndarray) -> np.ndarray:
        if self.positive is None:
            return (label > 0).astype(np.float32)
        return np.isin(label, sorted(self.positive)).astype(np.float32)


def resize_frame(frame: dict[str, np.ndarray], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Every image of a frame at ``size`` (height, width): nearest for depth and labels, whose
    values must not be blended (an edge between 0.5 m and 3 m is not 1.7 m), area otherwise."""
    height, width = size
    nearest = {"depth", "label"}
    return {
        k: cv2.resize(v, (width, height), interpolation=cv2.INTER_NEAREST if k in nearest else cv2.INTER_AREA)
        for k, v in frame.items()
    }
