"""CUDA kernels on a machine without a GPU: they compile for every target, without spills,
and the operator they implement (separable circular convolution) equals the FFT branch.

Numerics of the compiled kernels on a GPU are in the GPU tests (test_gpu.py); here the math the
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
        "k",
        255,
        16,
        8,
        4,
    )


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


TAIL_TOLERANCE = 1e-6  # kTailTolerance in frequency_split.cu


def tap_support(taps: np.ndarray) -> tuple[int, int]:
    """``(lo, hi)`` as ``tap_support`` in the kernel picks them: taps d in [-lo, hi] are used."""
    n = len(taps)
    budget = TAIL_TOLERANCE * np.abs(taps).sum()
    r = (n - 1) // 2
    tail = abs(taps[n // 2]) if n % 2 == 0 else 0.0
    if tail > budget:
        return r, n // 2
    while r > 0 and tail + abs(taps[r]) + abs(taps[-r]) <= budget:
        tail += abs(taps[r]) + abs(taps[-r])
        r -= 1
    return r, r


def truncated_convolution(x: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """``sum_d k[d] x[(i - d) mod n]`` over the kernel's support only, along ``axis``."""
    lo, hi = tap_support(taps)
    return sum(taps[d % len(taps)] * np.roll(x, d, axis=axis) for d in range(-lo, hi + 1))


@pytest.mark.parametrize("plane", PLANES, ids=lambda p: f"{p[0]}x{p[1]}")
@pytest.mark.parametrize("sigma", [0.02, 0.058, 0.08, 0.094, 0.3])
def test_skipping_negligible_taps_stays_within_fp32_rounding(plane, sigma):
    """The kernel convolves only over the taps that matter; the result is still the FFT branch."""
    height, width = plane
    x = np.random.default_rng(height + width).standard_normal((height, width)) * 30
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    reference = np.fft.irfft2(np.fft.rfft2(x) * np.exp(-(fy**2 + fx**2) / (2 * sigma**2)), s=plane)
    rows = truncated_convolution(x, circular_taps(sigma, width), axis=1)
    low = truncated_convolution(rows, circular_taps(sigma, height), axis=0)
    assert np.abs(low - reference).max() <= 4 * TAIL_TOLERANCE * np.abs(x).max()


@pytest.mark.parametrize(
    ("sigma", "n", "support"),
    [(0.08, 160, (10, 10)), (0.058, 120, (13, 13)), (0.3, 160, (79, 80)), (0.02, 40, (19, 20)), (0.3, 15, (7, 7))],
)
def test_tap_support_is_short_for_trained_cutoffs_and_whole_where_taps_ring(sigma, n, support):
    """Trained cutoffs (0.06-0.09 cycles/sample) need ~25 taps of 160; a wide pass band rings
    (Dirichlet kernel) and a narrow one wraps around, so those keep the whole period."""
    assert tap_support(circular_taps(sigma, n)) == support


ROW_OUTPUTS, COLUMN_OUTPUTS, THREADS = 5, 4, 256  # kRowOutputs, kColumnOutputs, kThreads


def sliding_convolution(v: np.ndarray, start: int, taps: np.ndarray, outputs: int) -> list[float]:
    """``sliding_convolution`` of the kernel, step by step: the same indices, wraps and window."""
    n = len(v)
    lo, hi = tap_support(taps)
    t = start + lo
    if t >= n:
        t -= n
    window, up = [], t
    for _ in range(outputs):
        window.append(v[up])
        up = 0 if up == n - 1 else up + 1
    acc = [0.0] * outputs
    for d in range(-lo, hi + 1):
        acc = [a + taps[d % len(taps)] * w for a, w in zip(acc, window, strict=False)]
        window = [None, *window[:-1]]
        t = n - 1 if t == 0 else t - 1
        window[0] = v[t]
    return acc


def emulate_block(x: np.ndarray, taps_h: np.ndarray, taps_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One thread block's row and column passes with the kernel's loop bounds; also counts writes."""
    height, width = x.shape
    rows, low = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
    writes = np.zeros(x.shape, int)
    for i in range(height):  # the warps share the rows; each lane's loop as in the kernel
        for lane in range(32):
            for j0 in range(lane * ROW_OUTPUTS, width, 32 * ROW_OUTPUTS):
                for q, value in enumerate(sliding_convolution(x[i], j0, taps_w, ROW_OUTPUTS)):
                    if j0 + q < width:
                        rows[i, j0 + q] = value
    row_blocks = -(-height // COLUMN_OUTPUTS)
    for thread in range(THREADS):
        for task in range(thread, row_blocks * width, THREADS):
            block, j = divmod(task, width)
            i0 = block * COLUMN_OUTPUTS
            for q, value in enumerate(sliding_convolution(rows[:, j], i0, taps_h, COLUMN_OUTPUTS)):
                if i0 + q < height:
                    low[i0 + q, j] = value
                    writes[i0 + q, j] += 1
    return low, writes


@pytest.mark.parametrize("plane", [*PLANES, (7, 9), (1, 6), (5, 163)], ids=lambda p: f"{p[0]}x{p[1]}")
@pytest.mark.parametrize("sigma", [0.02, 0.08, 0.3])
def test_register_blocked_loops_write_every_output_once_with_the_truncated_convolution(plane, sigma):
    height, width = plane
    x = np.random.default_rng(height * 7 + width).standard_normal(plane)
    taps_h, taps_w = circular_taps(sigma, height), circular_taps(sigma, width)
    low, writes = emulate_block(x, taps_h, taps_w)
    assert (writes == 1).all()
    expected = truncated_convolution(truncated_convolution(x, taps_w, axis=1), taps_h, axis=0)
    assert np.abs(low - expected).max() < 1e-12
