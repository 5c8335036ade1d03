"""Parameter and FLOP counts per modality subset (the model card's size table)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from binseg_ros.forms import FrequencyForm
from binseg_ros.modalities import CHANNELS, Subset, subset_name
from binseg_ros.model.network import BinSegNet, SubsetGraph


@dataclass(frozen=True)
class SubsetProfile:
    subset: str
    form: FrequencyForm
    params: int
    gflops: float


def count_subset(net: BinSegNet, subset: Subset, size: tuple[int, int], form: FrequencyForm) -> SubsetProfile:
    """Parameters the subset's graph uses and its FLOPs for one frame at ``size``.

    FLOPs come from ``torch.utils.flop_counter`` (convolutions and matmuls, 1 MAC = 2 FLOPs).
    It does not count FFTs, so the ``matmul`` form — whose DFTs are matmuls — is the honest
    upper bound; the ``fft`` form's figure omits the O(N log N) transforms.
    Parameters are counted from the modules the forward pass actually calls, so a subset's
    figure excludes the encoders and fusion branches of absent modalities.
    """
    net.set_frequency_form(form)
    graph = SubsetGraph(net, subset).eval()
    used: set[int] = set()
    hooks = [
        module.register_forward_hook(lambda mod, _in, _out: used.update(id(p) for p in mod.parameters(recurse=False)))
        for module in net.modules()
    ]
    example = tuple(torch.rand(1, CHANNELS[m], *size) for m in subset)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            graph(*example)
    finally:
        for hook in hooks:
            hook.remove()
    params = sum(p.numel() for p in net.parameters() if id(p) in used)
    return SubsetProfile(subset_name(subset), form, params, counter.get_total_flops() / 1e9)
