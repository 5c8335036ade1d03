"""The fused-modality binary segmenter: per-modality encoders → DPF per scale → FGD."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from binseg_ros.errors import InputError
from binseg_ros.forms import FrequencyForm
from binseg_ros.modalities import CHANNELS, MODALITIES, Subset, parse_subset
from binseg_ros.model.config import ModelConfig
from binseg_ros.model.decoder import FrequencyGuidedDecoder
from binseg_ros.model.encoder import ModalityEncoder
from binseg_ros.model.frequency import FrequencySplit
from binseg_ros.model.fusion import DifferentialPerceptionFusion
from binseg_ros.model.normalization import InputNormalizer

MIN_SIZE = 32
"""Smallest input side: the stride-32 level must keep at least one pixel."""


def check_inputs(inputs: Mapping[str, torch.Tensor]) -> Subset:
    """Validate a modality → ``[N, C, H, W]`` mapping and return its canonical subset.

    Raises:
        ModalityError: unknown or no modalities.
        InputError: wrong rank, channel count, batch or spatial size mismatch, too small.
    """
    subset = parse_subset(list(inputs))
    reference: tuple[int, ...] | None = None
    for modality in subset:
        x = inputs[modality]
        if x.dim() != 4:
            raise InputError(f"{modality}: expected a [N, C, H, W] tensor, got shape {tuple(x.shape)}")
        if x.shape[1] != CHANNELS[modality]:
            raise InputError(f"{modality}: expected {CHANNELS[modality]} channel(s), got {x.shape[1]}")
        if min(x.shape[2], x.shape[3]) < MIN_SIZE:
            raise InputError(f"{modality}: size {tuple(x.shape[2:])} is below the {MIN_SIZE}-pixel minimum")
        size = (x.shape[0], x.shape[2], x.shape[3])
        if reference is not None and size != reference:
            raise InputError(
                f"{modality}: batch/size {size} differs from {subset[0]}'s {reference}; "
                "modalities must be registered to one resolution first"
            )
        reference = size
    return subset


class BinSegNet(nn.Module):
    """Any non-empty subset of {rgb, depth, thermal} in, one logit map at input size out.

    Absent modalities are not computed: their encoders and fusion branches are never called,
    so the graph exported for a subset contains only that subset's weights.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        self.normalizer = InputNormalizer(c.normalization)
        self.encoders = nn.ModuleDict(
            {m: ModalityEncoder(CHANNELS[m], c.encoder_channels, c.encoder_depths, c.expansion) for m in MODALITIES}
        )
        self.fusion = nn.ModuleList(DifferentialPerceptionFusion(ch, MODALITIES) for ch in c.encoder_channels)
        self.decoder = FrequencyGuidedDecoder(c.encoder_channels, c.decoder_widths, c.frequency_form)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``[N, 1, H, W]`` for the modalities given, in sensor units (see normalization)."""
        subset = check_inputs(inputs)
        dtype = self.compute_dtype()  # the normaliser runs in fp32 whatever the weights are
        pyramids = {m: self.encoders[m](self.normalizer(m, inputs[m]).to(dtype)) for m in subset}
        fused = [fuse({m: pyramids[m][level] for m in subset}) for level, fuse in enumerate(self.fusion)]
        height, width = inputs[subset[0]].shape[-2:]
        return self.decoder(fused, (height, width))

    def compute_dtype(self) -> torch.dtype:
        """The dtype of the encoders' weights: the precision features are computed in."""
        return next(self.encoders.parameters()).dtype

    def to_half(self) -> BinSegNet:
        """fp16 weights and activations, except where fp16 loses the signal, in place.

        Stays fp32: the input normaliser (thermal arrives in raw counts near 18 000, where fp16
        steps by 16 counts, and its statistics are sums over the whole image) and each frequency
        branch's cutoffs and spectral filter (a sum over the whole plane, and ``x - low`` cancels).
        The logits become fp32 before the sigmoid in :class:`SubsetGraph`.
        """
        self.half()
        self.normalizer.float()
        for module in self.modules():
            if isinstance(module, FrequencySplit):
                module.float()
        return self

    def set_frequency_form(self, form: FrequencyForm) -> None:
        """Switch every frequency branch between ``fft`` and ``matmul`` (same weights)."""
        for module in self.modules():
            if isinstance(module, FrequencySplit):
                module.form = form
        self.config = self.config.with_form(form)


class SubsetGraph(nn.Module):
    """Positional-input wrapper for one subset, ending in a sigmoid: what gets exported.

    ONNX graphs take the subset's modalities as separate inputs in canonical order and give
    a ``probability`` map, so every backend returns the same thing.
    """

    def __init__(self, net: BinSegNet, subset: Subset) -> None:
        super().__init__()
        self.net = net
        self.subset = parse_subset(subset)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        if len(tensors) != len(self.subset):
            raise InputError(f"subset {'+'.join(self.subset)} takes {len(self.subset)} inputs, got {len(tensors)}")
        return torch.sigmoid(self.net(dict(zip(self.subset, tensors, strict=True))).float())
