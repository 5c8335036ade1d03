"""CUDA kernels on a machine without a GPU: they compile for every target, without spills,
and the operator they implement (separable circular convolution) equals the FFT branch.

Numerics of the compiled kernels on a GPU are in the GPU tests (issue 6); here the math the
kernel runs is checked in numpy against ``numpy.fft`` on every plane size the network uses.
"""

from __future__ import annotations

import numpy as np
import pytest

from binseg_ros.kernels.build import CUBIN_ARCHS, FREQUENCY_SPLIT, PTX_ARCH, compile_cubin, compile_ptx, parse_ptxas

ENTRIES = {"binseg_lowpass_taps", "binseg_frequency_split_f32", "binseg_frequency_split_f16"}
# Decoder planes at 480×640 and 240×320 inputs (strides 4, 8, 16, 32).
PLANES = [(120, 160), (60, 80), (30, 40), (15, 20), (8, 10)]


@pytest.mark.parametrize("arch", CUBIN_ARCHS)
def test_kernels_compile_for_every_target_without_spills(arch, tmp_path):
    cubin, report = compile_cubin(FREQUENCY_SPLIT, arch, tmp_path)
    assert cubin.stat().st_size > 0
    assert {r.kernel for r in report} == ENTRIES and {r.arch for r in report} == {arch}
    for resources in report:
        assert resources.spill_store_bytes == resources.spill_load_bytes == resources.stack_bytes == 0, resources
        assert resources.registers <= 64, resources  # 256 threads x 64 = a quarter of an SM's register file


def test_ptx_for_later_gpus(tmp_path):
    ptx = compile_ptx(FREQUENCY_SPLIT, PTX_ARCH, tmp_path).read_text()
    assert all(f".entry {entry}(" in ptx for entry in ENTRIES)


def test_ptxas_report_parser_reads_spills():
    log = (
        "ptxas info    : Compiling entry function 'k' for 'sm_90'\n"
        "ptxas info    : Function properties for k\n"
        "    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
        "ptxas info    : Used 255 registers, used 1 barriers\n"
    )
    (entry,) = parse_ptxas(log)
    assert (entry.kernel, entry.registers, entry.stack_bytes, entry.spill_store_bytes, entry.spill_load_bytes) == (
        "k", 255, 16, 8, 4)


def circular_taps(sigma: float, n: int) -> np.ndarray:
    """k_n[d] as ``binseg_lowpass_taps`` computes it (float64 here)."""
    k = np.arange(n)
    f = np.where(k < (n + 1) // 2, k, k - n) / n
    gain = np.exp(-(f**2) / (2 * sigma**2))
    phase = (k[:, None] * np.arange(n)[None, :]) % n
    return (gain[:, None] * np.cos(2 * np.pi * phase / n)).sum(axis=0) / n


@pytest.mark.parametrize("plane", PLANES, ids=lambda p: f"{p[0]}x{p[1]}")
@pytest.mark.parametrize("sigma", [0.02, 0.08, 0.3])
def test_separable_circular_convolution_is_the_fft_branch(plane, sigma):
    height, width = plane
    x = np.random.default_rng(height * width).standard_normal((height, width))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    reference = np.fft.irfft2(np.fft.rfft2(x) * np.exp(-(fy**2 + fx**2) / (2 * sigma**2)), s=plane)
    kh, kw = circular_taps(sigma, height), circular_taps(sigma, width)
    circulant_h = kh[(np.arange(height)[:, None] - np.arange(height)[None, :]) % height]
    circulant_w = kw[(np.arange(width)[:, None] - np.arange(width)[None, :]) % width]
    low = circulant_h @ x @ circulant_w.T  # rows[i][j] = sum_m x[i][m] k_W[j - m], then the columns
    assert np.abs(low - reference).max() < 1e-12
