"""Every reason a frame, a set or a mask is not used: the keys of every drop counter.

Diagnostics (``drops.<reason>``), the bag evaluator's accounting and its reports all count
under these names, so a reason is spelled once. Each reason says what it counts (its
:class:`Scope`), which is how the accounting checks that nothing vanished: every image is
in a set or under a frame reason, every set is a mask or under a set reason, every mask is
scored or under a mask reason. A frame the quality gate leaves out of a set is not a drop:
the set is still segmented from the others, and the frame is counted under
``degraded.<modality>.<reason>`` (:mod:`binseg_ros.core.quality`).
"""

from __future__ import annotations

from enum import Enum


class Scope(str, Enum):
    """What a drop reason counts."""

    FRAME = "frame"  # one sensor image
    SET = "set"  # one synchronised frame set that never became a mask
    MASK = "mask"  # one mask that could not be scored (evaluation only)


class DropReason(str, Enum):
    """Why an image, a set or a mask never reached the output (or the score)."""

    # an image message that could not become a frame (decode)
    UNDECODABLE = "undecodable"  # not even a message: a bag record that does not deserialise
    ZERO_SIZE = "zero_size"
    UNKNOWN_ENCODING = "unknown_encoding"
    UNSUPPORTED_ENCODING = "unsupported_encoding"  # a known encoding this modality does not take
    BAD_STEP = "bad_step"
    BAD_DATA_LENGTH = "bad_data_length"
    THERMAL_NONFINITE = "thermal_nonfinite"
    CALIBRATION_INCOMPLETE = "calibration_incomplete"  # arrived before every camera_info it needs
    DECODE_ERROR = "decode_error"  # a compressed image whose format or payload does not decode
    BAD_STAMP = "bad_stamp"  # a header stamp that is no time, unset, or far ahead of the arrival clock
    # a frame the synchroniser could not use
    STAMP_NOT_INCREASING = "stamp_not_increasing"
    RESOLUTION_MISMATCH = "resolution_mismatch"
    NO_MATCH = "no_match"  # an anchor for which a required modality has no frame within slop
    UNMATCHED = "unmatched"  # a non-anchor frame that no anchor picked
    NOT_ADMITTED = "not_admitted"  # a returning or benched modality's frame during hysteresis
    BUFFER_OVERFLOW = "buffer_overflow"
    REQUIRED_MISSING = "required_missing"  # anchor while a required modality is not active
    END_OF_INPUT = "end_of_input"  # still buffered when an offline input (a bag) ended
    # a set that never became a mask
    SUPERSEDED = "superseded"  # replaced by a newer set before inference took it
    SHUTDOWN = "shutdown"  # still waiting for inference when it stopped (the set in flight finishes)
    INFERENCE_ERROR = "inference_error"  # its engine or publisher raised
    DEGRADED = "degraded"  # the quality gate left none of its frames, or not a required one's
    # a mask that could not be scored
    NO_GROUND_TRUTH = "no_ground_truth"
    GROUND_TRUTH_SIZE_MISMATCH = "ground_truth_size_mismatch"

    @property
    def scope(self) -> Scope:
        if self in _SET_REASONS:
            return Scope.SET
        if self in _MASK_REASONS:
            return Scope.MASK
        return Scope.FRAME


_SET_REASONS = frozenset({DropReason.SUPERSEDED, DropReason.SHUTDOWN, DropReason.INFERENCE_ERROR, DropReason.DEGRADED})
_MASK_REASONS = frozenset({DropReason.NO_GROUND_TRUTH, DropReason.GROUND_TRUTH_SIZE_MISMATCH})


class Repair(str, Enum):
    """A frame that was used after a fix (counted as ``sanitized.<repair>``, not dropped)."""

    DEPTH_NONFINITE = "depth_nonfinite"  # NaN/inf depth (ROS's "no return") set to invalid 0


def total(counts: dict[str, int], scope: Scope) -> int:
    """The sum of the counters in ``counts`` whose reason has ``scope``."""
    return sum(count for reason, count in counts.items() if DropReason(reason).scope is scope)


def unaccounted(frames_in: int, frames_in_sets: int, sets: int, masks: int, drops: dict[str, int]) -> tuple[int, int]:
    """(images, sets) that vanished: images in no set and under no frame reason, sets that are
    no mask and under no set reason; (0, 0) when every one is accounted for."""
    return frames_in - frames_in_sets - total(drops, Scope.FRAME), sets - masks - total(drops, Scope.SET)
