"""Frames → network inputs at the engine's input size: resize, then sensor units, then layout.

Frames arrive registered to the RGB camera as decoded (:mod:`binseg_ros.core.frame`); the
graphs normalise sensor units themselves (:mod:`binseg_ros.model.normalization`), so
preprocessing is a resize, one affine step to sensor units and a layout change, identical
for the node, the bag evaluator and the tests.

The resize comes first, in the image's own type, so a 640×480 frame is never copied to
float at full size: depth with nearest-neighbour (exact in any type, and invalid 0 pixels
are never blended into fake depths at object edges); RGB with area averaging in uint8 (it
rounds to the nearest of 255 levels). Thermal is area-averaged in float32: a frame's
contrast is a few tens of counts, and rounding to whole counts would eat into it.

:func:`resized` is that first step on its own, because the quality gate judges the same
image (:func:`binseg_ros.core.quality.measuring_view`): where the engine's input size is the
gate's measuring size, the segmenter resizes each frame once and hands the result to both.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from binseg_ros.core.frame import Frame, registered_set
from binseg_ros.modalities import Subset

INTERPOLATION = {"rgb": cv2.INTER_AREA, "depth": cv2.INTER_NEAREST, "thermal": cv2.INTER_AREA}
FLOAT_RESIZE = frozenset({"thermal"})


def resize(image: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """``image`` at ``size`` (height, width) in its own type; itself when already that size."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=interpolation)


def resized(modality: str, data: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A ``modality`` image as decoded, at ``size`` (height, width): in its own type, thermal in
    float32, with the modality's interpolation; the input itself when already that size (never
    written to: the quality gate keeps it to compare with the next frame)."""
    data = data.astype(np.float32) if modality in FLOAT_RESIZE else data
    return resize(data, size, INTERPOLATION[modality])


def to_input(frame: Frame, image: np.ndarray) -> np.ndarray:
    """``image`` (``frame``'s data as :func:`resized` made it) as a ``[1, C, H, W]`` float32
    network input in sensor units; always a new array, so ``image`` is left as it was."""
    chw = image.transpose(2, 0, 1) if image.ndim == 3 else image[None]
    values = np.array(chw[None], dtype=np.float32, order="C")
    if frame.scale != 1.0:
        values *= np.float32(frame.scale)
    if frame.offset != 0.0:
        values += np.float32(frame.offset)
    return values


def prepare_frame(frame: Frame, size: tuple[int, int]) -> np.ndarray:
    """One frame as a ``[1, C, H, W]`` float32 network input at ``size`` (height, width)."""
    return to_input(frame, resized(frame.modality, frame.data, size))


def prepare_inputs(subset: Subset, frames: Mapping[str, Frame], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The network inputs of ``subset`` (canonical order) from its frames."""
    return {modality: prepare_frame(frames[modality], size) for modality in subset}


def prepare_images(images: Mapping[str, np.ndarray], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Network inputs from registered images in sensor units (a dataset frame's modalities)."""
    frameset = registered_set(dict(images))
    return prepare_inputs(frameset.subset, frameset.frames, size)
