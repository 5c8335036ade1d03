"""The frame and the frame set: what the synchroniser, the segmenter and the adapters share.

Times are integers: ``stamp_ns`` is the header stamp exactly as it came (ground truth and
published masks are matched on it, so it never goes through a float), and
:class:`Arrival` is when the frame came in, on two clocks: the node's (sim time under
``use_sim_time``, so health and timeouts follow the bag) and a monotonic wall clock (latency
is wall time whatever the ROS clock does).

``data`` is the decoded image in its wire type (uint8 RGB, uint16 or float32 depth, raw
thermal), often a view of the message buffer; sensor units (:mod:`binseg_ros.model.normalization`)
are ``data * scale + offset``, applied by preprocessing after the downscale so no
full-resolution float copy is ever made. A frame checks its own shape once, when it is made,
so everything downstream can trust it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from binseg_ros.errors import InputError
from binseg_ros.modalities import CHANNELS, MODALITIES, Subset, canonical

NS_PER_S = 1_000_000_000


def seconds_to_ns(seconds: float) -> int:
    """Seconds (a user setting, a float clock) as integer nanoseconds."""
    return round(seconds * NS_PER_S)


@dataclass(frozen=True)
class Arrival:
    """When a frame came in: ``clock_ns`` on the node's clock, ``monotonic`` in wall seconds."""

    clock_ns: int
    monotonic: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Frame:
    """One sensor image, as decoded, with its stamp and arrival."""

    modality: str
    stamp_ns: int
    arrival: Arrival
    data: np.ndarray
    frame_id: str = ""
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        channels = CHANNELS[self.modality]
        rank = 3 if channels > 1 else 2
        shape = self.data.shape
        if self.data.ndim != rank or (channels > 1 and shape[2] != channels) or 0 in shape:
            raise InputError(f"{self.modality}: expected an HxW{'x3' if channels > 1 else ''} frame, got shape {shape}")

    @property
    def resolution(self) -> tuple[int, int]:
        return self.data.shape[0], self.data.shape[1]

    def sensor_units(self) -> np.ndarray:
        """The whole image in sensor units (float32); for displays and tests, not the hot path."""
        values = self.data.astype(np.float32)
        if self.scale != 1.0:
            values *= np.float32(self.scale)
        if self.offset != 0.0:
            values += np.float32(self.offset)
        return values


@dataclass(frozen=True)
class FrameSet:
    """Frames of the active subset, synchronised to the anchor frame."""

    anchor: Frame
    frames: dict[str, Frame]

    @property
    def subset(self) -> Subset:
        return canonical(self.frames)

    @property
    def last_received(self) -> float:
        """Monotonic time the set's last frame arrived: the start of end-to-end latency."""
        return max(f.arrival.monotonic for f in self.frames.values())

    @property
    def first_arrival_ns(self) -> int:
        """Node-clock arrival of the set's earliest frame: the start of its synchronisation wait."""
        return min(f.arrival.clock_ns for f in self.frames.values())

    def background(self) -> Frame:
        """The frame an overlay is drawn on: RGB when the set has it, else the anchor."""
        return self.frames.get("rgb", self.anchor)


def registered_set(frames: dict[str, np.ndarray], stamp_ns: int = 0) -> FrameSet:
    """A frame set of already-registered images in sensor units, all at one stamp.

    For offline callers that have images, not messages (dataset evaluation, benches): the
    anchor is the first modality present in canonical order.
    """
    built = {m: Frame(m, stamp_ns, Arrival(stamp_ns), frames[m]) for m in MODALITIES if m in frames}
    return FrameSet(next(iter(built.values())), built)
