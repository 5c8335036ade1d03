"""One frame set in, mask out: register → quality gate → preprocess → backend → postprocess, timed per stage.

The node and the bag evaluator both call :class:`Segmenter`, so a frame set gives the
same mask whichever adapter it came through. The gate (:mod:`binseg_ros.core.quality`) is the
caller's, since it remembers the stream; it judges registered frames, which is what the
network sees (a depth camera wider than the reference leaves its unseen part out). Every frame
is resized to the engine's input before the gate: where that is the gate's measuring size
(the shipped engines), the gate judges those very images instead of resizing each frame again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from binseg_ros.core.backend import Backend
from binseg_ros.core.frame import FrameSet
from binseg_ros.core.postprocess import DEFAULT_THRESHOLD, to_mask, upscale
from binseg_ros.core.preprocess import resized, to_input
from binseg_ros.core.quality import MEASURE_SIZE, QualityGate, Reason
from binseg_ros.errors import ConfigError
from binseg_ros.modalities import CHANNELS, Subset


@dataclass(frozen=True)
class Segmentation:
    """The result for one frame set, at the anchor frame's resolution."""

    frameset: FrameSet
    probability: np.ndarray  # float32 [H, W]
    mask: np.ndarray  # uint8 0/255 [H, W]
    timings: dict[str, float] = field(default_factory=dict)  # stage → seconds
    left_out: dict[str, Reason] = field(default_factory=dict)  # modality → why the gate left its frame out

    @property
    def subset(self) -> Subset:
        return self.frameset.subset


class Register(Protocol):
    """Brings every frame of a set into the reference camera (:class:`~binseg_ros.core.registration.Registration`)."""

    @property
    def resolutions(self) -> Mapping[str, tuple[int, int]]: ...

    @property
    def reference_size(self) -> tuple[int, int]: ...

    def __call__(self, frameset: FrameSet) -> FrameSet: ...


class NothingLeft(Exception):
    """The quality gate left no frame of the set, or left out a required modality's: no mask."""

    def __init__(self, left_out: dict[str, Reason]) -> None:
        super().__init__(", ".join(f"{m} {reason.value}" for m, reason in left_out.items()))
        self.left_out = left_out


class Segmenter:
    """Runs the engine for exactly the subset present in each frame set.

    With ``register`` (a calibrated rig), the set is first registered into the reference
    camera, so the mask is in the reference camera's geometry whichever modality anchored it.
    """

    def __init__(
        self,
        backend: Backend,
        input_size: tuple[int, int],
        threshold: float = DEFAULT_THRESHOLD,
        register: Register | None = None,
    ) -> None:
        self.backend = backend
        self._input_size = input_size
        self._gate_shares_resize = input_size == MEASURE_SIZE  # the gate judges the engine's inputs
        self.threshold = threshold
        self.register = register

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the engine's inputs; fixed, since whether the gate shares the
        resize to it was decided with it."""
        return self._input_size

    @property
    def threshold(self) -> float:
        """The probability above which a pixel is foreground; it may change between sets (a live
        parameter): each set reads it once."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        """Checked here, where every threshold enters, at start-up or while running (NaN fails too)."""
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"threshold must be within [0, 1], got {value}")
        self._threshold = value

    def warm_up(self, subset: Subset) -> None:
        """Run the subset's engine once on zeros, so its first real frame is not slowed by
        session creation, graph optimisation or allocator growth (a fallback mid-mission
        would otherwise show as a latency spike)."""
        height, width = self.input_size
        self.backend.run({m: np.zeros((1, CHANNELS[m], height, width), np.float32) for m in subset})

    def __call__(self, frameset: FrameSet, gate: QualityGate | None = None) -> Segmentation:
        """The mask of ``frameset``, from the frames ``gate`` keeps (its time counts as preprocessing).

        Raises:
            NothingLeft: the gate kept nothing the set could be segmented with.
        """
        start = time.perf_counter()
        if self.register is not None:
            frameset = self.register(frameset)
        registered = time.perf_counter()
        images = {m: resized(m, frame.data, self.input_size) for m, frame in frameset.frames.items()}
        left_out: dict[str, Reason] = {}
        if gate is not None:
            judged = gate(frameset, images if self._gate_shares_resize else None)
            if judged.frameset is None:
                raise NothingLeft(judged.left_out)
            frameset, left_out = judged.frameset, judged.left_out
        inputs = {m: to_input(frameset.frames[m], images[m]) for m in frameset.subset}
        prepared = time.perf_counter()
        probability = self.backend.run(inputs)
        inferred = time.perf_counter()
        # With a rig, masks are in the reference camera at its resolution, whoever anchored the set.
        size = self.register.reference_size if self.register is not None else frameset.anchor.resolution
        full = upscale(probability, size)
        mask = to_mask(full, self.threshold)
        done = time.perf_counter()
        timings = {
            "register": registered - start,
            "preprocess": prepared - registered,
            "inference": inferred - prepared,
            "postprocess": done - inferred,
        }
        return Segmentation(frameset, full, mask, timings, left_out)
