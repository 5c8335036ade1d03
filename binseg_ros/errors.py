"""Errors raised by binseg_ros: one family, so every caller catches one base class.

Every error names the thing that was wrong (the modality, the file, the field) so a user
reading a log line on a robot knows what to fix without reading the code. The CLI turns a
:class:`BinsegError` into one line on stderr and exit code 2; the node into one log line.
Anything else reaching the user is a bug.
"""

from __future__ import annotations


class BinsegError(Exception):
    """Base class of every error this package raises on purpose."""


class ModalityError(BinsegError, ValueError):
    """An unknown modality name, or an empty / duplicated modality subset."""


class InputError(BinsegError, ValueError):
    """An input tensor or image with the wrong rank, channel count, size or dtype."""


class ConfigError(BinsegError, ValueError):
    """A setting (node parameter, synchroniser option, CLI flag) outside what the code can run with."""


class CheckpointError(BinsegError):
    """A weights file that is missing, unreadable, or does not match the model config."""


class ManifestError(BinsegError):
    """An engine manifest that is missing, malformed, or disagrees with its files."""


class BackendError(BinsegError):
    """A backend that is unknown, not installed here, or cannot load its engine."""


class BagError(BinsegError):
    """A rosbag that cannot be read or written, lacks a topic the job needs, or has no ground truth."""


class CalibrationError(BinsegError, ValueError):
    """A rig file, ``camera_info`` file or message, or calibration input (point pairs, pattern
    images) that is missing, malformed, or not a plausible camera; the message names the file (or
    topic) and the key."""


class NodeError(BinsegError):
    """A ROS 2 peer (segment_node, a player) that did not come up, answer, or exit cleanly."""
