"""What one training run is: data, schedule, losses, augmentation, seed.

Its own module because the loop, the model card and the CLI all read it: kept apart, none of
them has to import another to know what a run was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from binseg_ros.datasets import FolderLayout, LabelMap
from binseg_ros.training.data import Augment


@dataclass(frozen=True)
class TrainConfig:
    data_root: str
    split_file: str
    out_dir: str
    size: tuple[int, int] = (240, 320)
    epochs: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    modality_dropout: bool = True
    consistency_weight: float = 0.5
    subset_floor: float = 0.5  # uniform share of the sub-modal draws; the rest follows each subset's loss
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    limit: int = 0  # use only the first N training ids (smoke runs); 0 = all
    init: str | None = None  # weights file to start from (fine-tuning) instead of fresh weights
    augment: Augment = field(default_factory=Augment)
    layout: FolderLayout = field(default_factory=FolderLayout)
    labels: LabelMap = field(default_factory=LabelMap)
