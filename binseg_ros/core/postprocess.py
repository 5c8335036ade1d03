"""Network probability → mask (and optional overlay) at the anchor camera's resolution."""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_THRESHOLD = 0.5
"""Probability above which a pixel is foreground (the node's ``threshold`` default)."""
OVERLAY_COLOR = np.array([255, 0, 64], np.float32)  # RGB
OVERLAY_ALPHA = 0.5


def upscale(probability: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of the ``[h, w]`` probability to ``resolution`` (height, width)."""
    height, width = resolution
    if probability.shape == (height, width):
        return probability
    return cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)


def to_mask(probability: np.ndarray, threshold: float) -> np.ndarray:
    """``mono8`` mask, 255 where ``probability > threshold``, else 0."""
    return np.where(probability > threshold, np.uint8(255), np.uint8(0))


def overlay(background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``rgb8`` image: the mask tinted over ``background`` (HxWx3 uint8, or HxW of any dtype).

    Single-channel backgrounds (depth or thermal when RGB is gone) are stretched to 0..255
    over their finite values so the overlay stays readable whatever the units.
    """
    if background.shape[:2] != mask.shape:  # a registered frame at the network's size, under a full-size mask
        background = cv2.resize(background, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
    if background.ndim == 2:
        values = np.nan_to_num(background.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        gray = cv2.normalize(values, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)  # type: ignore[call-overload]
        background = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    out = background.astype(np.float32)
    selected = mask > 0
    out[selected] = (1 - OVERLAY_ALPHA) * out[selected] + OVERLAY_ALPHA * OVERLAY_COLOR
    return out.astype(np.uint8)
