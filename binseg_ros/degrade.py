"""How real sensors fail while still publishing, as image transforms in sensor units.

One definition serves three users: ``binseg make-bag --degrade`` writes bags with a
degradation window, training draws them as augmentations so the fused engines learn to
shrug off what the quality gate lets through, and the model card's robustness table
measures each one. Images are what :func:`binseg_ros.datasets.load_frame` gives: RGB
``[H, W, 3]`` 0..255, depth in metres (0 = invalid), thermal in raw counts.

The fixed strengths (``STRENGTH``) are the evaluation's: a camera at 4 % of its exposure, a
sensor facing the sun, a depth sensor with 60 % of its image in holes. Training draws
milder and harsher ones around them (:func:`random_degradation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from binseg_ros.errors import InputError

KINDS: Mapping[str, tuple[str, ...]] = {
    "rgb": ("dark", "overexposed", "black", "frozen", "noise", "blur"),
    "depth": ("holes", "zeros", "frozen"),
    "thermal": ("flat", "frozen"),
}
"""The degradations each modality is tested and trained against. ``frozen`` is a driver
republishing an old image: the content of another moment, not matching the scene."""

STRENGTH: Mapping[str, float] = {
    "dark": 0.04,  # exposure factor
    "overexposed": 4.0,  # gain, plus OVEREXPOSED_LIFT
    "noise": 60.0,  # std, 0..255 scale
    "blur": 6.0,  # Gaussian std in pixels at 640x480
    "holes": 0.6,  # fraction of the image in invalid blocks
}
OVEREXPOSED_LIFT = 60.0
HOLE_BLOCK = 0.05  # side of one invalid block, as a fraction of the image height


@dataclass(frozen=True)
class Degradation:
    """One kind of degradation of one modality, e.g. ``rgb:dark``."""

    modality: str
    kind: str

    def __post_init__(self) -> None:
        if self.modality not in KINDS:
            raise InputError(f"unknown modality {self.modality!r}; expected one of {', '.join(KINDS)}")
        if self.kind not in KINDS[self.modality]:
            raise InputError(
                f"{self.modality} has no degradation {self.kind!r}; expected one of {', '.join(KINDS[self.modality])}"
            )

    def __str__(self) -> str:
        return f"{self.modality}:{self.kind}"


def all_degradations() -> list[Degradation]:
    return [Degradation(modality, kind) for modality, kinds in KINDS.items() for kind in kinds]


def apply(
    degradation: Degradation,
    image: np.ndarray,
    rng: np.random.Generator,
    stale: np.ndarray | None = None,
    strength: float | None = None,
) -> np.ndarray:
    """``image`` degraded, in its own dtype and units; ``stale`` is the image ``frozen`` repeats.

    ``strength`` overrides the kind's fixed one (training draws it).

    Raises:
        InputError: ``frozen`` without a stale image of the same shape.
    """
    kind = degradation.kind
    value = STRENGTH.get(kind, 0.0) if strength is None else strength
    if kind == "frozen":
        if stale is None or stale.shape != image.shape:
            raise InputError(f"{degradation} needs a stale image of shape {image.shape}")
        return stale.copy()
    if kind in ("black", "zeros"):
        return np.zeros_like(image)
    if kind == "flat":
        return np.full_like(image, image.mean())
    if kind == "holes":
        return np.where(_hole_mask(image.shape[:2], value, rng), 0, image).astype(image.dtype)
    if kind == "blur":
        sigma = value * image.shape[0] / 480
        return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    degraded = image.astype(np.float32)
    if kind == "dark":
        degraded = degraded * value
    elif kind == "overexposed":
        degraded = degraded * value + OVEREXPOSED_LIFT
    elif kind == "noise":
        degraded = degraded + rng.normal(0.0, value, image.shape).astype(np.float32)
    return np.clip(degraded, 0, 255).astype(image.dtype)


def _hole_mask(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Blocks of about ``HOLE_BLOCK`` of the height, each invalid with probability ``fraction``:
    the shape of sunlight or glass in a depth image, not scattered pixels."""
    height, width = shape
    side = max(1, round(HOLE_BLOCK * height))
    coarse = rng.random((-(-height // side), -(-width // side))) < fraction
    return np.repeat(np.repeat(coarse, side, axis=0), side, axis=1)[:height, :width]


TRAINING_PROBABILITY = 0.15
"""Training's default chance that each sensor of a sample is degraded, drawn per sensor."""

TRAINING_RANGE: Mapping[str, tuple[float, float]] = {
    "dark": (0.02, 0.3),
    "overexposed": (2.0, 5.0),
    "noise": (10.0, 80.0),
    "blur": (2.0, 10.0),
    "holes": (0.2, 0.8),
}


def random_degradation(modality: str, image: np.ndarray, rng: np.random.Generator, stale: np.ndarray) -> np.ndarray:
    """One degradation of ``modality`` drawn uniformly from its kinds, at a strength drawn from
    ``TRAINING_RANGE`` (kinds without a strength are all-or-nothing)."""
    kind = KINDS[modality][int(rng.integers(len(KINDS[modality])))]
    low_high = TRAINING_RANGE.get(kind)
    strength = float(rng.uniform(*low_high)) if low_high else None
    return apply(Degradation(modality, kind), image, rng, stale, strength)
