"""Differential perception fusion (DPF), after DifferSeg.

At one pyramid scale, each present modality's features pass through learnable depthwise
*differential operators* (initialised to Sobel-x, Sobel-y and Laplacian), whose responses
are projected back and added: edges and curvature are what RGB, depth and thermal agree or
disagree on at object boundaries. A per-pixel *complementarity* score per modality is
turned into weights by a softmax over the modalities present in this forward pass only,
and the weighted sum is refined with a residual block.

With one modality present the softmax is exactly 1, so the output is that modality's
enhanced features plus the refinement: its own path, never a zero-padded mixture.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from binseg_ros.model.layers import ConvBNAct, SeparableConv

SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
SOBEL_Y = ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0))
LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
DIFFERENTIAL_KERNELS = (SOBEL_X, SOBEL_Y, LAPLACIAN)


class DifferentialOperators(nn.Module):
    """Depthwise 3×3 convolution giving ``[∂x, ∂y, ∇²]`` responses per channel, learnable."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        kinds = len(DIFFERENTIAL_KERNELS)
        self.conv = nn.Conv2d(channels, channels * kinds, 3, padding=1, groups=channels, bias=False)
        init = torch.tensor(DIFFERENTIAL_KERNELS).repeat(channels, 1, 1).unsqueeze(1)
        with torch.no_grad():
            self.conv.weight.copy_(init)  # output 3c+k is operator k on channel c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ModalityDifferential(nn.Module):
    """One modality's branch of DPF: ``enhanced = x + project(differential(x))`` and its score."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.differential = DifferentialOperators(channels)
        self.project = ConvBNAct(channels * len(DIFFERENTIAL_KERNELS), channels, 1)
        self.score = nn.Conv2d(channels * 2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.differential(x))

    def complementarity_score(self, x: torch.Tensor, enhanced: torch.Tensor) -> torch.Tensor:
        """Per-pixel logit of how much this modality should count at this scale."""
        return self.score(torch.cat([x, enhanced], dim=1))


class DifferentialPerceptionFusion(nn.Module):
    """DPF at one scale, for whichever modalities are present."""

    def __init__(self, channels: int, modalities: tuple[str, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleDict({m: ModalityDifferential(channels) for m in modalities})
        self.refine = SeparableConv(channels, channels)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        enhanced = {m: self.branches[m](x) for m, x in features.items()}
        if len(enhanced) == 1:  # softmax over one modality is exactly 1: skip the scores
            (fused,) = enhanced.values()
        else:
            weights = self.complementarity(features, enhanced)
            fused = torch.stack([weights[m] * enhanced[m] for m in enhanced]).sum(dim=0)
        return fused + self.refine(fused)

    def complementarity(
        self, features: Mapping[str, torch.Tensor], enhanced: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Per-pixel modality weights ``[N, 1, H, W]``: a softmax over the modalities present."""
        scores = [
            self.branches[m].complementarity_score(x, enhanced[m])  # type: ignore[operator]  # ModuleDict items are typed Module
            for m, x in features.items()
        ]
        weights = torch.softmax(torch.stack(scores, dim=0), dim=0)
        return dict(zip(features, weights.unbind(0), strict=True))
