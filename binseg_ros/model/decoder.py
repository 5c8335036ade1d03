"""Frequency-guided decoder (FGD), after DifferSeg.

Top-down from stride 32 to stride 4. At each scale the fused features are split by the
FFT frequency branch into low frequencies (object bodies, context) and high frequencies
(boundaries, texture). The two parts then gate each other (cross-frequency interaction):
low-frequency context decides which high-frequency detail is object boundary rather than
background texture, and boundary evidence sharpens the smooth context. Coarser features
reach the next scale through two upsampling paths — bilinear (smooth, exact alignment) and
a learned pixel shuffle (restores detail) — which are summed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from binseg_ros.forms import FrequencyForm
from binseg_ros.model.frequency import FrequencySplit
from binseg_ros.model.layers import ConvBNAct, SeparableConv


class CrossFrequencyBlock(nn.Module):
    """Frequency split, mutual gating of low and high parts, fusion, residual."""

    def __init__(self, channels: int, form: FrequencyForm) -> None:
        super().__init__()
        self.split = FrequencySplit(channels, form)
        self.low_to_high = nn.Conv2d(channels, channels, 1)
        self.high_to_low = nn.Conv2d(channels, channels, 1)
        self.fuse = SeparableConv(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.split(x)
        high_guided = high * torch.sigmoid(self.low_to_high(low))
        low_guided = low * torch.sigmoid(self.high_to_low(high))
        return x + self.fuse(torch.cat([low_guided, high_guided], dim=1))


class MultiPathUpsample(nn.Module):
    """Bilinear path + learned pixel-shuffle path, to an exact target size.

    The target size is the finer feature's size, which is not always twice the coarse one
    (240 rows give 8 rows at stride 32 but 15 at stride 16), so the shuffled map is cropped:
    a stride-2 padded conv centres coarse pixel ``i`` on fine pixel ``2i``, so cropping keeps
    alignment.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.bilinear_path = ConvBNAct(in_channels, out_channels, 1, act=False)
        self.shuffle_path = nn.Sequential(nn.Conv2d(in_channels, out_channels * 4, 1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        smooth = F.interpolate(self.bilinear_path(x), size=size, mode="bilinear", align_corners=False)
        detail = self.shuffle_path(x)[..., : size[0], : size[1]]
        return smooth + detail


class FrequencyGuidedDecoder(nn.Module):
    """Decodes four fused scales into one logit map at the input resolution."""

    def __init__(self, in_channels: tuple[int, ...], widths: tuple[int, ...], form: FrequencyForm) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(ConvBNAct(c, w, 1) for c, w in zip(in_channels, widths, strict=True))
        self.upsample = nn.ModuleList(MultiPathUpsample(widths[i + 1], widths[i]) for i in range(len(widths) - 1))
        self.blocks = nn.ModuleList(CrossFrequencyBlock(w, form) for w in widths)
        self.head = nn.Sequential(SeparableConv(widths[0], widths[0]), nn.Conv2d(widths[0], 1, 1))

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        x = self.blocks[-1](self.lateral[-1](features[-1]))
        for level in range(len(features) - 2, -1, -1):
            skip = self.lateral[level](features[level])
            x = self.blocks[level](skip + self.upsample[level](x, skip.shape[-2:]))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)
