"""Per-modality input normalisation: the one place its constants are defined.

The network takes inputs in sensor units so every runtime (torch, ONNX Runtime, TensorRT)
sees the same numbers and preprocessing stays a resize and a cast:

- ``rgb``: float 0..255, RGB channel order.
- ``depth``: metres; ``0``, NaN, negative or beyond ``max_depth_m`` means invalid.
  Invalid pixels are set to 0 after normalisation (the dataset mean), so they carry no
  spurious edges into the differential operators.
- ``thermal``: raw counts (``mono16``), standardised per frame (mean and standard deviation
  over the image, with a floor on the deviation), then clipped. Uncalibrated thermal cores
  drift in offset and gain between flat-field corrections and with ambient temperature,
  while the signal that segments objects is the contrast within a frame: on MM5 the frame
  means spread by ±72 counts but a frame's own deviation is only ~22 counts, so a global
  scale would leave the network almost no contrast to learn from. The floor keeps a
  featureless frame from amplifying sensor noise; the clip keeps a saturated hot spot
  from dominating a layer's statistics.

The constants live in :class:`Normalization`, which is stored in the checkpoint's config and
in the engine manifest, and the graph applies them, so weights and normalisation never drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from binseg_ros.modalities import MODALITIES


@dataclass(frozen=True)
class Normalization:
    """Normalisation constants for every modality.

    Defaults: ImageNet statistics for RGB; depth statistics measured on MM5 (valid depth
    0.89 ± 0.30 m); thermal per-frame deviation floor of 8 counts (MM5 frames: median 22,
    range 16–201).
    """

    rgb_mean: tuple[float, float, float] = (0.485 * 255, 0.456 * 255, 0.406 * 255)
    rgb_std: tuple[float, float, float] = (0.229 * 255, 0.224 * 255, 0.225 * 255)
    depth_mean_m: float = 0.9
    depth_std_m: float = 0.3
    max_depth_m: float = 20.0
    thermal_min_std: float = 8.0
    thermal_clip: float = 10.0

    def to_dict(self) -> dict[str, object]:
        """Plain-Python form for YAML manifests and ``torch.load(weights_only=True)``."""
        return {
            "rgb_mean": list(self.rgb_mean),
            "rgb_std": list(self.rgb_std),
            "depth_mean_m": self.depth_mean_m,
            "depth_std_m": self.depth_std_m,
            "max_depth_m": self.max_depth_m,
            "thermal_min_std": self.thermal_min_std,
            "thermal_clip": self.thermal_clip,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Normalization:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        fields["rgb_mean"] = tuple(fields["rgb_mean"])  # type: ignore[arg-type]
        fields["rgb_std"] = tuple(fields["rgb_std"])  # type: ignore[arg-type]
        return cls(**fields)  # type: ignore[arg-type]


class InputNormalizer(nn.Module):
    """Applies :class:`Normalization` inside the graph, one modality at a time."""

    rgb_mean: torch.Tensor  # buffers, registered in __init__
    rgb_std: torch.Tensor

    def __init__(self, norm: Normalization) -> None:
        super().__init__()
        self.norm = norm
        self.register_buffer("rgb_mean", torch.tensor(norm.rgb_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("rgb_std", torch.tensor(norm.rgb_std).view(1, 3, 1, 1), persistent=False)

    def forward(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        n = self.norm
        if modality == "rgb":
            return (x - self.rgb_mean) / self.rgb_std
        if modality == "depth":
            valid = (x > 0) & (x < n.max_depth_m)  # NaN compares false: invalid
            scaled = (x - n.depth_mean_m) / n.depth_std_m
            return torch.where(valid, scaled, torch.zeros_like(x))
        if modality == "thermal":
            # Runtimes reduce in fp32, some (ONNX Runtime's CPU ReduceMean) in one sequential sum:
            # over 300k pixels near 18 000 counts that is off by hundreds of counts. Shifting by
            # one pixel first and reducing one axis at a time keeps every sum small and short.
            shifted = x - x[:, :, :1, :1]
            mean = shifted.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
            centred = shifted - mean
            var = centred.square().mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
            return (centred / var.sqrt().clamp_min(n.thermal_min_std)).clamp(-n.thermal_clip, n.thermal_clip)
        raise KeyError(f"no normalisation for modality {modality!r}; expected one of {MODALITIES}")
