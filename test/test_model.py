"""The network: subsets, DPF semantics, normalisation, input errors, size budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import random_inputs

from binseg_ros.errors import InputError, ModalityError
from binseg_ros.modalities import MODALITIES, all_subsets
from binseg_ros.model import BinSegNet, ModelConfig
from binseg_ros.model.fusion import DIFFERENTIAL_KERNELS, DifferentialOperators
from binseg_ros.model.normalization import InputNormalizer, Normalization
from binseg_ros.model.profile import count_subset

SIZE = (96, 128)


def tensors(subset, size=SIZE, seed=0):
    arrays = random_inputs(size, seed)
    return {m: torch.from_numpy(arrays[m]) for m in subset}


@pytest.fixture(scope="module")
def net() -> BinSegNet:
    torch.manual_seed(0)
    return BinSegNet().eval()


@pytest.mark.parametrize("subset", all_subsets(), ids="+".join)
def test_any_subset_gives_one_logit_map_at_input_size(net, subset):
    with torch.no_grad():
        out = net(tensors(subset))
    assert out.shape == (1, 1, *SIZE)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(240, 320), (100, 36), (33, 47)])
def test_sizes_that_are_not_multiples_of_32(net, size):
    with torch.no_grad():
        assert net(tensors(MODALITIES, size)).shape == (1, 1, *size)


@pytest.mark.parametrize("subset", all_subsets(), ids="+".join)
def test_absent_modalities_are_never_computed(net, subset):
    called: set[str] = set()
    hooks = []
    for m in MODALITIES:
        hooks.append(net.encoders[m].register_forward_pre_hook(lambda *_, m=m: called.add(f"encoder:{m}")))
        for fusion in net.fusion:
            branch = fusion.branches[m]
            hooks.append(branch.register_forward_pre_hook(lambda *_, m=m: called.add(f"dpf:{m}")))
            hooks.append(branch.score.register_forward_pre_hook(lambda *_, m=m: called.add(f"score:{m}")))
    try:
        with torch.no_grad():
            net(tensors(subset))
    finally:
        for hook in hooks:
            hook.remove()
    expected = {f"encoder:{m}" for m in subset} | {f"dpf:{m}" for m in subset}
    if len(subset) > 1:  # complementarity scores only exist when there is something to weigh
        expected |= {f"score:{m}" for m in subset}
    assert called == expected


def test_dpf_with_one_modality_is_that_modality_path(net):
    fusion = net.fusion[1]
    x = torch.randn(1, fusion.refine[1][0].out_channels, 12, 16)
    with torch.no_grad():
        out = fusion({"depth": x})
        enhanced = fusion.branches["depth"](x)
        expected = enhanced + fusion.refine(enhanced)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_dpf_weights_are_a_softmax_over_present_modalities(net):
    fusion = net.fusion[0]
    torch.manual_seed(3)
    feats = {m: torch.randn(1, 32, 10, 12) for m in MODALITIES}
    with torch.no_grad():
        enhanced = {m: fusion.branches[m](x) for m, x in feats.items()}
        for subset in all_subsets():
            if len(subset) == 1:
                continue
            weights = fusion.complementarity({m: feats[m] for m in subset}, enhanced)
            assert set(weights) == set(subset)
            total = torch.stack(list(weights.values())).sum(0)
            torch.testing.assert_close(total, torch.ones_like(total))
            # Fused output is the weight-blended enhanced features plus the residual refinement.
            blended = sum(weights[m] * enhanced[m] for m in subset)
            torch.testing.assert_close(
                fusion({m: feats[m] for m in subset}), blended + fusion.refine(blended), rtol=1e-5, atol=1e-5
            )
        # Two-modality weights are not the three-modality ones truncated: renormalised over present.
        pair = fusion.complementarity({m: feats[m] for m in ("rgb", "depth")}, enhanced)
        triple = fusion.complementarity(feats, enhanced)
        renorm = triple["rgb"] / (triple["rgb"] + triple["depth"])
        torch.testing.assert_close(pair["rgb"], renorm, rtol=1e-5, atol=1e-6)


def test_differential_operators_start_as_sobel_and_laplacian_and_learn():
    ops = DifferentialOperators(4)
    weight = ops.conv.weight.detach()
    assert weight.shape == (12, 1, 3, 3)
    for channel in range(4):
        for kind, kernel in enumerate(DIFFERENTIAL_KERNELS):
            assert torch.equal(weight[3 * channel + kind, 0], torch.tensor(kernel))
    assert ops.conv.weight.requires_grad
    ramp = torch.arange(8.0).repeat(8, 1).view(1, 1, 8, 8).repeat(1, 4, 1, 1)  # d/dx = 1, d/dy = 0
    out = ops(ramp)[0, :3, 2:-2, 2:-2]
    assert torch.all(out[0] == 8) and torch.all(out[1] == 0) and torch.all(out[2] == 0)


def test_normalisation_masks_invalid_depth_and_clips_thermal():
    norm = Normalization()
    normalizer = InputNormalizer(norm)
    depth = torch.tensor([0.0, float("nan"), float("inf"), -1.0, 25.0, norm.depth_mean_m, 1.5]).view(1, 1, 1, -1)
    out = normalizer("depth", depth).flatten()
    assert out[:5].tolist() == [0.0] * 5  # invalid: 0, NaN, inf, negative, beyond max range
    assert out[5].item() == pytest.approx(0.0)
    assert out[6].item() == pytest.approx((1.5 - norm.depth_mean_m) / norm.depth_std_m)
    scene = 18000.0 + 20.0 * torch.randn(1, 1, 16, 16)
    standardised = normalizer("thermal", scene)
    assert standardised.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert standardised.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-3)
    drifted = scene * 1.03 + 400.0  # gain and offset drift between flat-field corrections
    assert torch.allclose(normalizer("thermal", drifted), standardised, atol=1e-3)
    flat = 18000.0 + torch.tensor([-1.0, 1.0]).repeat(8).view(1, 1, 4, 4)  # featureless: noise not amplified
    assert normalizer("thermal", flat).abs().max().item() == pytest.approx(1.0 / norm.thermal_min_std)
    hot_spot = torch.full((1, 1, 32, 32), 18000.0)
    hot_spot[..., 0, 0] = 1e7
    assert normalizer("thermal", hot_spot).max().item() == norm.thermal_clip
    rgb = torch.tensor(norm.rgb_mean).view(1, 3, 1, 1)
    assert normalizer("rgb", rgb).abs().max() < 1e-6


def test_normalisation_is_saved_with_the_model():
    custom = Normalization(thermal_min_std=3.0, thermal_clip=5.0)
    config = ModelConfig(normalization=custom)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert BinSegNet(config).normalizer.norm == custom


@pytest.mark.parametrize(
    ("inputs", "error", "message"),
    [
        ({}, ModalityError, "empty modality subset"),
        ({"lidar": torch.zeros(1, 1, 64, 64)}, ModalityError, "unknown modality 'lidar'"),
        ({"rgb": torch.zeros(1, 1, 64, 64)}, InputError, "rgb: expected 3 channel"),
        ({"depth": torch.zeros(1, 3, 64, 64)}, InputError, "depth: expected 1 channel"),
        ({"thermal": torch.zeros(64, 64)}, InputError, r"thermal: expected a \[N, C, H, W\]"),
        ({"rgb": torch.zeros(1, 3, 16, 64)}, InputError, "below the 32-pixel minimum"),
        (
            {"rgb": torch.zeros(1, 3, 64, 64), "depth": torch.zeros(1, 1, 64, 96)},
            InputError,
            "depth: batch/size .* differs from rgb",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(net, inputs, error, message):
    with pytest.raises(error, match=message):
        net(inputs)


def test_edge_budget_at_480x640():
    """≤ 5 M parameters and ≤ 10 GFLOPs with all three modalities, in both frequency forms."""
    net = BinSegNet().eval()
    assert sum(p.numel() for p in net.parameters()) <= 5_000_000
    for form in ("fft", "matmul"):
        profile = count_subset(net, MODALITIES, (480, 640), form)
        assert profile.params == sum(p.numel() for p in net.parameters())
        assert 1.0 < profile.gflops <= 10.0
    single = count_subset(net, ("depth",), (480, 640), "matmul")
    assert single.params < profile.params / 2  # the other encoders are not part of the graph
    assert math.isclose(
        count_subset(net, ("rgb",), (480, 640), "fft").gflops * 4,
        count_subset(net, ("rgb",), (960, 1280), "fft").gflops,
        rel_tol=0.05,
    )


def test_fft_and_matmul_forms_give_the_same_network_output(net):
    inputs = tensors(MODALITIES, (120, 160))
    with torch.no_grad():
        net.set_frequency_form("fft")
        reference = net(inputs)
        net.set_frequency_form("matmul")
        matmul = net(inputs)
        net.set_frequency_form("fft")
    np.testing.assert_allclose(matmul.numpy(), reference.numpy(), rtol=0, atol=1e-4)
    assert net.config.frequency_form == "fft"
