"""Small building blocks shared by the encoders, the fusion and the decoder."""

from __future__ import annotations

from torch import nn


class ConvBNAct(nn.Sequential):
    """Conv → BatchNorm → ReLU6 (ReLU6 keeps activations in a range FP16/INT8 engines like)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True) if act else nn.Identity(),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand → 3×3 depthwise → 1×1 project, residual when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: int = 3) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.block = nn.Sequential(
            ConvBNAct(in_channels, hidden, 1),
            ConvBNAct(hidden, hidden, 3, stride=stride, groups=hidden),
            ConvBNAct(hidden, out_channels, 1, act=False),
        )
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):  # type: ignore[no-untyped-def]
        out = self.block(x)
        return x + out if self.residual else out


class SeparableConv(nn.Sequential):
    """3×3 depthwise then 1×1 pointwise: a 3×3 receptive field at a fraction of the FLOPs."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, groups=in_channels),
            ConvBNAct(in_channels, out_channels, 1),
        )
