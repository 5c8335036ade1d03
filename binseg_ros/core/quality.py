"""The sensor quality gate: a camera that still publishes but no longer sees is left out.

Sensors fail by degrading while their topics stay alive: an RGB camera in the dark, facing
the sun, behind a covered lens or re-sending its last image; a blinded or hole-riddled depth
image; a thermal core flat during its flat-field correction, or frozen. The synchroniser only
notices silence, so without a gate the fused engine would be fed these images. The segmenter
hands the gate every set it takes, registered (what the network sees); the gate leaves out
the frames that fail, so the set is segmented by the engine of the modalities that still see
(the segmenter runs exactly the subset present).

Metrics are computed on the frame resized to :data:`MEASURE_SIZE` exactly as preprocessing
resizes it (:func:`~binseg_ros.core.preprocess.resized`: the modality's interpolation, in the
image's own type, thermal in float32), because the limits are only valid at the size they were
fitted at (noise and blur measures change with scale), whatever the engine's input size. At
the shipped engines' 240×320 that image is the one the network is fed, so the segmenter
resizes each frame once and hands the result to the gate as well (a second resize per frame
costs about as much as the gate's own work, for depth several times more); at any other input
size the gate makes its own. The limits' defaults are fitted on MM5's training split by
``binseg gate fit`` (README, "Sensor quality gate"). Each modality's :data:`CHECKS` run in
order and the first failure names the reason.

``frozen`` is a frame identical to that modality's previous one while another modality of
the set changed: a stuck driver among live ones. When every image repeats, a static scene
seen by noiseless sensors (a simulator, a player looping one frame) cannot be told from a
stuck rig, and nothing is called frozen.

Hysteresis: a modality is degraded from its first failing frame, and readmitted only on the
``readmit_frames``-th consecutive passing frame (the ones before count as ``recovering``), so
a borderline sensor does not switch engines every frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum

import cv2
import numpy as np

from binseg_ros.core.frame import FrameSet
from binseg_ros.core.preprocess import resized
from binseg_ros.errors import ConfigError
from binseg_ros.modalities import MODALITIES, NO_SUBSET, Subset

MEASURE_SIZE = (240, 320)
"""(height, width) every frame is judged at: the size the default limits were fitted at."""

NEAR_BLACK = 16  # luminance below which an RGB pixel is near-black (0..255)
CLIPPED = 250  # a channel sample at or above this is saturated (0..255)

Metrics = dict[str, float]


class Reason(str, Enum):
    """Why a frame was left out: the last part of its ``degraded.<modality>.<reason>`` counter."""

    UNDEREXPOSED = "underexposed"  # rgb: mostly near-black (dark, lens covered)
    OVEREXPOSED = "overexposed"  # rgb: much of it clipped (facing the sun)
    FLAT = "flat"  # rgb: no structure at all; thermal: no contrast (flat-field correction)
    NOISY = "noisy"  # rgb: fine detail far above the scene's structure
    BLURRED = "blurred"  # rgb: fine detail far below it
    BLIND = "blind"  # depth: not one valid pixel
    HOLES = "holes"  # depth: too few valid pixels
    SATURATED = "saturated"  # thermal: a large plateau at the image's maximum
    FROZEN = "frozen"  # the same image again while another sensor's changed
    RECOVERING = "recovering"  # passes, but the modality has not yet earned readmission


@dataclass(frozen=True)
class QualityConfig:
    """The gate's limits (fitted defaults, see the module doc) and its hysteresis."""

    max_dark_fraction: float = 0.575  # rgb: near-black pixels
    max_clipped_fraction: float = 0.226  # rgb: clipped channel samples
    max_detail_ratio: float = 2.47  # rgb: mean |Laplacian| at full over half size; above = noisy
    min_detail_ratio: float = 0.789  # below = blurred
    min_valid_fraction: float = 0.609  # depth
    min_thermal_std: float = 7.48  # thermal, raw counts
    max_saturated_fraction: float = 0.5  # thermal: pixels at the image's maximum
    readmit_frames: int = 3  # consecutive passing frames that readmit a degraded modality
    frozen_frames: int = 3  # repeats in a row that make a frozen image (drivers republish at 2-3x)

    def __post_init__(self) -> None:
        for name in ("max_dark_fraction", "max_clipped_fraction", "min_valid_fraction", "max_saturated_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"quality.{name} must be within [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.min_detail_ratio < self.max_detail_ratio:
            raise ConfigError(
                f"quality.min_detail_ratio must be >= 0 and below quality.max_detail_ratio, "
                f"got {self.min_detail_ratio} and {self.max_detail_ratio}"
            )
        if self.min_thermal_std < 0:
            raise ConfigError(f"quality.min_thermal_std must be >= 0 counts, got {self.min_thermal_std}")
        if self.readmit_frames < 1:
            raise ConfigError(f"quality.readmit_frames must be >= 1, got {self.readmit_frames}")
        if self.frozen_frames < 1:
            raise ConfigError(f"quality.frozen_frames must be >= 1, got {self.frozen_frames}")


LIMITS = tuple(f.name for f in fields(QualityConfig) if f.name.startswith(("min_", "max_")))
"""The fitted fields of :class:`QualityConfig`: ``max_*`` fail above, ``min_*`` below."""


@dataclass(frozen=True)
class Check:
    """One reason a frame fails: ``metric`` beyond the :class:`QualityConfig` field ``limit``,
    or, with no limit, exactly 0 (nothing valid, no structure at all)."""

    reason: Reason
    metric: str
    limit: str | None = None

    def fails(self, metrics: Metrics, config: QualityConfig) -> bool:
        value = metrics[self.metric]
        if self.limit is None:
            return value == 0.0
        bound = float(getattr(config, self.limit))
        return value > bound if self.limit.startswith("max_") else value < bound


CHECKS: Mapping[str, tuple[Check, ...]] = {
    "rgb": (
        Check(Reason.UNDEREXPOSED, "dark_fraction", "max_dark_fraction"),
        Check(Reason.OVEREXPOSED, "clipped_fraction", "max_clipped_fraction"),
        Check(Reason.FLAT, "structure"),
        Check(Reason.NOISY, "detail_ratio", "max_detail_ratio"),
        Check(Reason.BLURRED, "detail_ratio", "min_detail_ratio"),
    ),
    "depth": (Check(Reason.BLIND, "valid_fraction"), Check(Reason.HOLES, "valid_fraction", "min_valid_fraction")),
    "thermal": (
        Check(Reason.FLAT, "std", "min_thermal_std"),
        Check(Reason.SATURATED, "saturated_fraction", "max_saturated_fraction"),
    ),
}
"""Each modality's checks in the order they are made: exposure before structure, because a
black or washed-out image has no detail worth measuring."""


def measuring_view(modality: str, data: np.ndarray) -> np.ndarray:
    """``data`` (a frame's image as decoded) at :data:`MEASURE_SIZE`, as preprocessing resizes it."""
    return resized(modality, data, MEASURE_SIZE)


def _mean_abs_laplacian(gray: np.ndarray) -> float:
    return float(cv2.norm(cv2.Laplacian(gray, cv2.CV_16S), cv2.NORM_L1)) / gray.size


def _count_thresholded(image: np.ndarray, threshold: int, kind: int) -> int:
    """Samples of a uint8 ``image`` (any channels) above ``threshold`` (``THRESH_BINARY``) or at
    most it (``THRESH_BINARY_INV``); OpenCV's threshold and count take about half the time of
    NumPy's comparison and count on a frame fresh from the resize."""
    samples = image.reshape(image.shape[0], -1)  # channels as columns: countNonZero takes one
    return int(cv2.countNonZero(cv2.threshold(samples, threshold, 1, kind)[1]))


def _rgb(view: np.ndarray) -> Metrics:
    gray = cv2.cvtColor(view, cv2.COLOR_RGB2GRAY)
    fine = _mean_abs_laplacian(gray)
    coarse = _mean_abs_laplacian(cv2.pyrDown(gray))
    return {
        "dark_fraction": _count_thresholded(gray, NEAR_BLACK - 1, cv2.THRESH_BINARY_INV) / gray.size,
        "clipped_fraction": _count_thresholded(view, CLIPPED - 1, cv2.THRESH_BINARY) / view.size,  # channel samples
        "structure": coarse,
        "detail_ratio": fine / coarse if coarse else 0.0,
    }


def _depth(view: np.ndarray) -> Metrics:
    return {"valid_fraction": np.count_nonzero(view > 0) / view.size}  # 0 and NaN are invalid


def _thermal(view: np.ndarray, scale: float) -> Metrics:
    _, std = cv2.meanStdDev(view)
    top = cv2.minMaxLoc(view)[1]
    return {
        "std": float(std[0, 0]) * abs(scale),  # raw counts, whatever the encoding
        "saturated_fraction": np.count_nonzero(view >= top) / view.size,
    }


def measure(modality: str, view: np.ndarray, scale: float = 1.0) -> Metrics:
    """The metrics :data:`CHECKS` judge, of a :func:`measuring_view`; ``scale``: the frame's
    data-to-sensor-units factor (thermal contrast is judged in raw counts)."""
    if modality == "rgb":
        return _rgb(view)
    if modality == "depth":
        return _depth(view)
    return _thermal(view, scale)


def same_view(view: np.ndarray, last: np.ndarray) -> bool:
    """Whether two :func:`measuring_view` s of one modality are identical (the ``frozen`` test)."""
    return view.dtype == last.dtype and cv2.norm(view, last, cv2.NORM_INF) == 0


def first_failure(modality: str, metrics: Metrics, config: QualityConfig) -> Reason | None:
    """The reason of the first of ``modality``'s checks that ``metrics`` fail, if any."""
    return next((check.reason for check in CHECKS[modality] if check.fails(metrics, config)), None)


@dataclass
class _Track:
    """One modality's memory: its previous view (for ``frozen``) and its hysteresis."""

    last: np.ndarray | None = None
    reason: Reason | None = None  # why it is left out; None while admitted
    streak: int = 0  # passing frames since its last failure
    repeated: int = 0  # times in a row the view was the previous one again

    def repeats(self, view: np.ndarray) -> bool | None:
        """Whether ``view`` is the previous view again (None: there is no previous one); counts
        the run, so a driver that republishes each image two or three times is not frozen."""
        if self.last is None:
            return None
        same = same_view(view, self.last)
        self.repeated = self.repeated + 1 if same else 0
        return same

    def verdict(self, failure: Reason | None, readmit_frames: int) -> Reason | None:
        """Why this frame is left out (None: it is used), after hysteresis."""
        if failure is not None:
            self.reason, self.streak = failure, 0
            return failure
        if self.reason is None:
            return None
        self.streak += 1
        if self.streak >= readmit_frames:
            self.reason = None
            return None
        return Reason.RECOVERING


@dataclass(frozen=True)
class GateResult:
    """A judged set: the frames that are used (None when none is left, or a required modality's
    frame is not) and why the others are not."""

    frameset: FrameSet | None
    left_out: dict[str, Reason]


class QualityGate:
    """Judges each set; stateful per modality, so one gate serves one stream of sets.

    ``required``: modalities without which no mask is made (the node's ``required_modalities``),
    whether they are silent (the synchroniser's business) or left out here. ``config`` may be
    replaced by a new one while sets are judged (a live parameter change): each set reads it
    once, so it is judged by one set of limits.
    """

    def __init__(self, config: QualityConfig = QualityConfig(), required: Subset = NO_SUBSET) -> None:
        self.config = config
        self.required = required
        self._tracks = {m: _Track() for m in MODALITIES}

    def __call__(self, frameset: FrameSet, views: Mapping[str, np.ndarray] | None = None) -> GateResult:
        """The set without the frames of degraded modalities; the anchor becomes the first kept
        modality in canonical order, as if the left-out frames had never arrived.

        ``views``: each frame's :func:`measuring_view`, already made by the caller (preprocessing's
        resize when the engine's input size is :data:`MEASURE_SIZE`), so no frame is resized
        twice; None: the gate makes them. They are kept, unchanged, for the next set's repeat check.
        """
        config = self.config
        if views is None:
            views = {m: measuring_view(m, frame.data) for m, frame in frameset.frames.items()}
        repeated = {m: self._tracks[m].repeats(views[m]) for m in frameset.frames}
        changed = any(r is False for r in repeated.values())  # another sensor saw something new
        left_out: dict[str, Reason] = {}
        for modality in frameset.frames:
            view = views[modality]
            failure = first_failure(modality, measure(modality, view, frameset.frames[modality].scale), config)
            frozen = repeated[modality] is True and self._tracks[modality].repeated >= config.frozen_frames
            if failure is None and frozen and changed:
                failure = Reason.FROZEN
            track = self._tracks[modality]
            track.last = view
            verdict = track.verdict(failure, config.readmit_frames)
            if verdict is not None:
                left_out[modality] = verdict
        kept = {m: frame for m, frame in frameset.frames.items() if m not in left_out}
        if not left_out:
            return GateResult(frameset, left_out)
        if not kept or any(m in left_out for m in self.required):
            return GateResult(None, left_out)
        anchor = next(m for m in MODALITIES if m in kept)
        return GateResult(FrameSet(kept[anchor], kept), left_out)

    def degraded(self) -> dict[str, Reason]:
        """Modality → the failure that put it out, for each modality not yet readmitted."""
        return {m: track.reason for m, track in self._tracks.items() if track.reason is not None}
