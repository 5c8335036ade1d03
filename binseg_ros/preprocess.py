"""Sensor frames (numpy, sensor units) → network inputs at the engine's input size.

Frames arrive registered to the RGB camera and in the units the graphs normalise
(:mod:`binseg_ros.model.normalization`): ``rgb`` HxWx3 uint8 in RGB order, ``depth`` HxW
metres, ``thermal`` HxW raw counts. Preprocessing is therefore only a resize and a layout
change, so the node, the replay evaluator and the tests all feed engines identically.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from binseg_ros.errors import InputError
from binseg_ros.modalities import CHANNELS, parse_subset


def _resize(image: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=interpolation)


def prepare_inputs(frames: Mapping[str, np.ndarray], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Resize each modality to ``size`` (height, width) and return ``[1, C, H, W]`` float32.

    Depth is resized with nearest-neighbour so invalid (0) pixels are never blended into
    fake depths at object edges; RGB and thermal use area averaging when shrinking.

    Raises:
        InputError: a frame whose shape does not match its modality's channel count.
    """
    subset = parse_subset(list(frames))
    prepared = {}
    for modality in subset:
        frame = np.asarray(frames[modality])
        channels = CHANNELS[modality]
        expected_rank = 3 if channels > 1 else 2
        if frame.ndim != expected_rank or (channels > 1 and frame.shape[2] != channels) or 0 in frame.shape:
            raise InputError(f"{modality}: expected an HxW{'x3' if channels > 1 else ''} frame, got shape {frame.shape}")
        interpolation = cv2.INTER_NEAREST if modality == "depth" else cv2.INTER_AREA
        resized = _resize(frame.astype(np.float32, copy=False), size, interpolation)
        chw = resized.transpose(2, 0, 1) if channels > 1 else resized[None]
        prepared[modality] = np.ascontiguousarray(chw[None], dtype=np.float32)
    return prepared
