"""``torch.ops.binseg.frequency_split`` on the CPU: schema, fake kernel, reference numerics, the
``kernel`` network form, and the launcher library the CUDA kernel runs through.

The CUDA kernel itself is compared with ``torch.fft`` in ``test_gpu.py`` (needs a GPU).
"""

from __future__ import annotations

import ctypes

import pytest
import torch
from test_frequency import SIZES
from torch._subclasses.fake_tensor import FakeTensorMode

from binseg_ros.kernels import launcher
from binseg_ros.kernels.ops import frequency_split
from binseg_ros.modalities import CHANNELS, all_subsets
from binseg_ros.model import BinSegNet
from binseg_ros.model.frequency import FrequencySplit, gaussian_lowpass, spectral_filter_fft


@pytest.mark.parametrize("size", SIZES)
def test_reference_op_equals_fft_branch(size):
    generator = torch.Generator().manual_seed(sum(size))
    x = torch.randn(2, 6, *size, generator=generator)
    sigma = torch.rand(6, generator=generator) * 0.38 + 0.02
    low, high = torch.ops.binseg.frequency_split(x, sigma)
    expected = spectral_filter_fft(x, gaussian_lowpass(sigma, *size))
    torch.testing.assert_close(low, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(high, x - expected, rtol=0, atol=1e-5)


def test_fp16_io_accumulates_in_fp32():
    x = torch.randn(1, 4, 30, 40) * 50
    sigma = torch.full((4,), 0.08)
    low, high = frequency_split(x.half(), sigma)
    assert low.dtype == high.dtype == torch.float16
    expected = spectral_filter_fft(x.half().float(), gaussian_lowpass(sigma, 30, 40))
    torch.testing.assert_close(low.float(), expected, rtol=0, atol=2e-2 * 50)


def test_op_registration_passes_torch_opcheck():
    x = torch.randn(2, 3, 15, 20)
    torch.library.opcheck(frequency_split, (x, torch.tensor([0.05, 0.1, 0.3])))


def test_fake_kernel_gives_shapes_and_checks_sigma():
    with FakeTensorMode():
        x = torch.empty(1, 8, 60, 80)
        low, high = frequency_split(x, torch.empty(8))
        assert low.shape == high.shape == x.shape and low.dtype == x.dtype
        with pytest.raises(RuntimeError, match="sigma must be"):
            frequency_split(x, torch.empty(7))


def test_no_backward_through_the_op():
    split = FrequencySplit(4, "kernel")
    low, _ = split(torch.randn(1, 4, 8, 10, requires_grad=True))
    with pytest.raises(RuntimeError, match="autograd"):
        low.sum().backward()


def test_kernel_form_network_equals_fft_form(calibrated_net: BinSegNet):
    net = BinSegNet(calibrated_net.config)
    net.load_state_dict(calibrated_net.state_dict())
    net.eval()
    generator = torch.Generator().manual_seed(0)
    inputs = {m: torch.rand(1, CHANNELS[m], 96, 128, generator=generator) for m in CHANNELS}
    inputs["thermal"] = inputs["thermal"] * 4000 + 18000
    with torch.no_grad():
        for subset in all_subsets():
            chosen = {m: inputs[m] for m in subset}
            net.set_frequency_form("fft")
            reference = torch.sigmoid(net(chosen))
            net.set_frequency_form("kernel")
            torch.testing.assert_close(torch.sigmoid(net(chosen)), reference, rtol=0, atol=1e-5)


def test_launcher_library_builds_once_and_reports_its_launch_geometry(tmp_path, monkeypatch):
    """The library the CUDA op loads: built by nvcc into the cache, loadable without a GPU."""
    monkeypatch.setenv(launcher.CACHE_ENV, str(tmp_path))
    launcher.launcher.cache_clear()
    lib = launcher.launcher("sm_87")
    (built,) = tmp_path.glob("*/libbinseg_kernels.sm_87.so")
    stamp = built.stat().st_mtime_ns
    launcher.launcher.cache_clear()
    assert isinstance(launcher.launcher("sm_87"), ctypes.CDLL)
    assert built.stat().st_mtime_ns == stamp  # loaded from the cache, not rebuilt
    launcher.launcher.cache_clear()
    # Shared memory per block: the plane, both axes' unrolled taps, one staged row per warp.
    height, width = 120, 160
    warps = lib.binseg_frequency_split_threads() // 32
    assert lib.binseg_frequency_split_smem_bytes(height, width) == 4 * (
        height * width + 2 * width - 1 + 2 * height - 1 + warps * width
    )
    assert lib.binseg_frequency_split_smem_bytes(height, width) <= 163 * 1024  # Orin's opt-in limit per block
