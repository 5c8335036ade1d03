"""The settings of the synchroniser (:class:`~binseg_ros.core.sync.Synchronizer`), which
:mod:`binseg_ros.core.sync` re-exports: the adapters make them from parameters, checked once here."""

from __future__ import annotations

import math
from dataclasses import dataclass

from binseg_ros.errors import ConfigError
from binseg_ros.modalities import NO_SUBSET, Subset


@dataclass(frozen=True)
class SyncConfig:
    """The synchroniser's settings, in seconds as users give them; checked once, here."""

    slop: float = 0.05
    modality_timeout: float = 0.5
    readmit_frames: int = 3
    buffer_size: int = 10
    required: Subset = NO_SUBSET
    max_delay: float = 0.15

    def __post_init__(self) -> None:
        if not (math.isfinite(self.slop) and self.slop > 0):
            raise ConfigError(f"slop must be a finite number > 0 s, got {self.slop}")
        if not (math.isfinite(self.modality_timeout) and self.modality_timeout > 0):
            raise ConfigError(f"modality_timeout must be a finite number > 0 s, got {self.modality_timeout}")
        if self.readmit_frames < 1:
            raise ConfigError(f"readmit_frames must be >= 1, got {self.readmit_frames}")
        if self.buffer_size < 1:
            raise ConfigError(f"buffer_size must be >= 1, got {self.buffer_size}")
        if not (math.isfinite(self.max_delay) and self.max_delay >= 0):
            raise ConfigError(f"max_delay must be a finite number >= 0 s, got {self.max_delay}")
