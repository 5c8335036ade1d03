"""Modality encoders: one light CNN pyramid per modality, all of the same design."""

from __future__ import annotations

import torch
from torch import nn

from binseg_ros.model.layers import ConvBNAct, InvertedResidual


class ModalityEncoder(nn.Module):
    """Stem to stride 4, then four inverted-residual stages at strides 4, 8, 16 and 32.

    RGB, depth and thermal differ only in ``in_channels``: equal capacity per modality is part
    of keeping any one of them from dominating the fused representation.
    """

    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, ...],
        depths: tuple[int, ...],
        expansion: int,
        stem_channels: int = 16,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBNAct(in_channels, stem_channels, 3, stride=2),
            ConvBNAct(stem_channels, channels[0], 3, stride=2),
        )
        stages = []
        previous = channels[0]
        for index, (width, depth) in enumerate(zip(channels, depths, strict=True)):
            blocks = [InvertedResidual(previous, width, stride=1 if index == 0 else 2, expansion=expansion)]
            blocks += [InvertedResidual(width, width, expansion=expansion) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            previous = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
