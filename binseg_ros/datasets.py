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
