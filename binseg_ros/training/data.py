"""Training samples: registered frames, binary targets, augmentations that keep registration.

Geometric transforms (flip, scale-crop) are drawn once per sample and applied identically to
every modality and the label, so the three sensors stay pixel-registered. Photometric
changes are drawn per modality, because real sensors drift independently: RGB exposure and
colour, depth scale error and dropout holes, thermal gain/offset drift and noise.
Degradations (:mod:`binseg_ros.degrade`: a dark or blinded camera, depth holes, a flat or
frozen thermal image, ...) are drawn per modality too, independently of modality dropout:
the fused engines learn to shrug off a sensor that still publishes but sees little, at the
milder strengths the node's quality gate lets through. The label stays the scene's.
Frames stay in sensor units; the network normalises them (model/normalization.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from binseg_ros.datasets import FolderLayout, LabelMap, load_frame, resize_frame
from binseg_ros.degrade import TRAINING_PROBABILITY, random_degradation
from binseg_ros.modalities import MODALITIES


@dataclass(frozen=True)
class Augment:
    """Augmentation strengths; ``Augment.none()`` for evaluation."""

    flip: bool = True
    scale: tuple[float, float] = (0.75, 1.25)
    rgb_brightness: float = 0.25
    rgb_contrast: float = 0.25
    depth_scale: float = 0.05
    depth_holes: float = 0.05  # max fraction of depth pixels dropped to invalid
    thermal_gain: float = 0.05
    thermal_offset: float = 150.0  # raw counts
    thermal_noise: float = 3.0  # raw counts, std (MM5 frames deviate by ~22 counts)
    degrade: float = TRAINING_PROBABILITY  # probability that a modality of a sample is degraded (each drawn alone)

    @classmethod
    def none(cls) -> Augment:
        return cls(False, (1.0, 1.0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _scale_crop(
    frame: dict[str, np.ndarray], size: tuple[int, int], scale: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Resize by ``scale`` relative to ``size``, then crop (or pad with invalid/background) back."""
    height, width = size
    scaled = resize_frame(frame, (max(1, round(height * scale)), max(1, round(width * scale))))
    sh, sw = next(iter(scaled.values())).shape[:2]
    top = int(rng.integers(0, sh - height + 1)) if sh > height else 0
    left = int(rng.integers(0, sw - width + 1)) if sw > width else 0
    out = {}
    for key, value in scaled.items():
        crop = value[top : top + height, left : left + width]
        if crop.shape[:2] != (height, width):  # zoomed out: pad; 0 is invalid depth and background
            pad = [(0, height - crop.shape[0]), (0, width - crop.shape[1])] + [(0, 0)] * (crop.ndim - 2)
            fill = np.median(crop) if key == "thermal" else 0
            crop = np.pad(crop, pad, constant_values=fill)
        out[key] = crop
    return out


def augment(
    frame: dict[str, np.ndarray],
    size: tuple[int, int],
    aug: Augment,
    rng: np.random.Generator,
    stale: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """One augmented copy of ``frame`` (rgb uint8, depth m, thermal counts, label) at ``size``.

    ``stale`` (another frame at ``size``) is what a ``frozen`` degradation repeats; without it
    no modality is degraded.
    """
    scale = float(rng.uniform(*aug.scale))
    out = _scale_crop(frame, size, scale, rng) if scale != 1.0 else resize_frame(frame, size)
    if aug.flip and rng.random() < 0.5:
        out = {k: np.ascontiguousarray(v[:, ::-1]) for k, v in out.items()}
    rgb = out["rgb"].astype(np.float32)
    if aug.rgb_brightness or aug.rgb_contrast:
        contrast = 1 + rng.uniform(-aug.rgb_contrast, aug.rgb_contrast)
        brightness = 255 * rng.uniform(-aug.rgb_brightness, aug.rgb_brightness) / 2
        rgb = (rgb - rgb.mean()) * contrast + rgb.mean() + brightness
    out["rgb"] = np.clip(rgb, 0, 255)
    depth = out["depth"].astype(np.float32) * (1 + rng.uniform(-aug.depth_scale, aug.depth_scale))
    if aug.depth_holes:
        depth[rng.random(depth.shape) < rng.uniform(0, aug.depth_holes)] = 0.0
    out["depth"] = np.where(out["depth"] > 0, depth, 0.0).astype(np.float32)
    thermal = out["thermal"].astype(np.float32) * (1 + rng.uniform(-aug.thermal_gain, aug.thermal_gain))
    thermal += rng.uniform(-aug.thermal_offset, aug.thermal_offset)
    if aug.thermal_noise:
        thermal += rng.normal(0, aug.thermal_noise, thermal.shape).astype(np.float32)
    out["thermal"] = thermal
    if stale is not None and aug.degrade:
        for modality in MODALITIES:
            if rng.random() < aug.degrade:
                out[modality] = random_degradation(modality, out[modality], rng, stale[modality].astype(np.float32))
    return out


@dataclass
class SegmentationDataset(Dataset):
    """Frames of ``ids`` under ``root``, decoded once and kept in memory (MM5: ~0.7 GB)."""

    root: Path
    ids: Sequence[str]
    size: tuple[int, int]
    aug: Augment = field(default_factory=Augment.none)
    labels: LabelMap = field(default_factory=LabelMap)
    layout: FolderLayout = field(default_factory=FolderLayout)
    seed: int = 0

    def __post_init__(self) -> None:
        self._frames = [load_frame(self.root, frame_id, self.layout) for frame_id in self.ids]
        self._epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentations depend on (seed, epoch, index) only: reproducible with any worker count."""
        self._epoch = epoch

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self._epoch, index))
        stale = None
        if self.aug.degrade and len(self._frames) > 1:  # its own stream: the other draws stay as without it
            draw = np.random.default_rng((self.seed, self._epoch, index, 1)).integers(len(self._frames) - 1)
            stale = resize_frame(self._frames[(index + 1 + int(draw)) % len(self._frames)], self.size)
        frame = augment(self._frames[index], self.size, self.aug, rng, stale)
        sample = {
            "rgb": torch.from_numpy(frame["rgb"].transpose(2, 0, 1).copy()),
            "depth": torch.from_numpy(frame["depth"][None]),
            "thermal": torch.from_numpy(frame["thermal"][None]),
            "target": torch.from_numpy(self.labels.binary(frame["label"])[None]),
        }
        return sample


def modality_batch(
    batch: dict[str, torch.Tensor], subset: Iterable[str], device: torch.device
) -> dict[str, torch.Tensor]:
    """The network inputs of ``subset`` from a collated batch."""
    return {m: batch[m].to(device, non_blocking=True) for m in MODALITIES if m in set(subset)}
