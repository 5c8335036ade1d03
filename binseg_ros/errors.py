"""Errors raised by the binseg_ros core.

Every error names the thing that was wrong (the modality, the file, the field) so a user
reading a log line on a robot knows what to fix without reading the code.
"""

from __future__ import annotations


class BinsegError(Exception):
    """Base class of every error this package raises on purpose."""


class ModalityError(BinsegError, ValueError):
    """An unknown modality name, or an empty / duplicated modality subset."""


class InputError(BinsegError, ValueError):
    """An input tensor or image with the wrong rank, channel count, size or dtype."""


class CheckpointError(BinsegError):
    """A weights file that is missing, unreadable, or does not match the model config."""


class ManifestError(BinsegError):
    """An engine manifest that is missing, malformed, or disagrees with its files."""


class BackendError(BinsegError):
    """A backend that is unknown, not installed here, or cannot load its engine."""


class BagError(BinsegError):
    """A rosbag that cannot be read or written, lacks a topic the job needs, or has no ground truth."""
