"""``binseg bench frequency``: the frequency-split op on the GPU against cuFFT and the matmul form.

For every decoder plane size (strides 4..32 at 480×640 and 240×320 inputs) and batch 1 and
16, in fp32 and fp16 I/O, it times each path twice (medians of CUDA-event intervals):

- eager (:func:`~binseg_ros.bench.timing.cuda_median_ms`): one call after another from Python,
  so where the work is small the host's launch cost per op is what is measured;
- graph (:func:`~binseg_ros.bench.timing.cuda_graph_median_ms`): the call captured in a CUDA
  graph and replayed, as the network's graphs run it: the GPU's own time.

The paths:

- custom: ``torch.ops.binseg.frequency_split`` (the project's kernels; computes its taps
  from the cutoffs in every call, as in the network);
- cuFFT: ``rfft2`` → multiply by the Gaussian gain → ``irfft2``, plus ``high = x - low``.
  The gain is computed once outside the timing (this favours cuFFT). fp16 I/O runs the
  transforms in fp32: cuFFT's half-precision transforms take power-of-two sizes only;
- matmul: :func:`~binseg_ros.model.frequency.spectral_filter_matmul` as the network calls it
  in eager torch, which builds its DFT matrices on the CPU and copies them over in every
  call (an exported graph holds them as constants), plus ``high = x - low``.

Speed-ups are the other path's time over the custom op's. The matmul form copies its DFT
matrices from the host in every call, which a capture cannot hold, so it is timed eager only.
At batch 16 it also reports the custom kernel's achieved DRAM bandwidth in the graph timing,
counting the compulsory traffic only (read ``x``, write ``low`` and ``high``), as a fraction
of the GPU's theoretical peak.
"""

from __future__ import annotations

import torch

from binseg_ros.bench.timing import cuda_graph_median_ms, cuda_median_ms
from binseg_ros.engines.tensorrt.imports import import_cudart
from binseg_ros.errors import BackendError
from binseg_ros.kernels.ops import frequency_split
from binseg_ros.model.frequency import gaussian_lowpass, spectral_filter_fft, spectral_filter_matmul

PLANES = [(120, 160), (60, 80), (30, 40), (15, 20), (8, 10)]
BATCHES = (1, 16)
BANDWIDTH_BATCH = 16
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
CUTOFFS = {"trained": (0.055, 0.095), "wide": (0.02, 0.4)}
"""Cutoff ranges (cycles/sample): the shipped model's, where the kernel needs ~25 taps per
output, and a wide one, whose narrow and wide pass bands force the whole plane's taps (the
kernel's worst case; cuFFT's cost does not depend on the cutoffs)."""


def peak_dram_bandwidth(device: torch.device) -> tuple[float | None, str]:
    """Theoretical DRAM bandwidth in bytes/s, ``2 × memory clock × bus width / 8``, and its source.

    torch's device properties carry the memory clock (kHz) and bus width (bits); where this
    torch lacks them, the CUDA runtime is asked through cuda-python. ``None`` if neither can.
    """
    props = torch.cuda.get_device_properties(device)
    clock_khz = getattr(props, "memory_clock_rate", 0)
    bus_bits = getattr(props, "memory_bus_width", 0)
    source = "torch.cuda.get_device_properties"
    if not (clock_khz and bus_bits):
        try:
            cudart = import_cudart()
            index = torch.cuda.current_device() if device.index is None else device.index
            attr = cudart.cudaDeviceAttr
            err_clock, clock_khz = cudart.cudaDeviceGetAttribute(attr.cudaDevAttrMemoryClockRate, index)
            err_bus, bus_bits = cudart.cudaDeviceGetAttribute(attr.cudaDevAttrGlobalMemoryBusWidth, index)
            if err_clock != cudart.cudaError_t.cudaSuccess or err_bus != cudart.cudaError_t.cudaSuccess:
                return None, f"cudaDeviceGetAttribute failed ({err_clock}, {err_bus})"
            source = "cuda-python cudaDeviceGetAttribute"
        except BackendError:
            return None, "unknown (no memory clock in torch's device properties and no cuda-python)"
    if not (clock_khz and bus_bits):
        return None, f"unknown ({source} reported clock {clock_khz} kHz, bus {bus_bits} bits)"
    peak = 2.0 * clock_khz * 1e3 * bus_bits / 8
    return peak, f"{source}: 2 × {clock_khz / 1e3:.0f} MHz × {bus_bits} bit / 8 = {peak / 1e9:.0f} GB/s"


def _cufft_split(x: torch.Tensor, gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    signal = x.float()  # no-op for fp32; cuFFT's fp16 transforms need power-of-two sizes
    low = spectral_filter_fft(signal, gain)
    return low.to(x.dtype), (signal - low).to(x.dtype)


def _matmul_split(x: torch.Tensor, gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    low = spectral_filter_matmul(x, gain)
    return low, x - low


def run_frequency_bench(runs: int, warmup: int, channels: int = 64) -> int:
    """Print the markdown table described in the module docstring; returns the exit code."""
    if not torch.cuda.is_available():
        raise BackendError("binseg bench frequency needs a CUDA GPU (torch.cuda.is_available() is False)")
    device = torch.device("cuda", torch.cuda.current_device())
    peak, peak_source = peak_dram_bandwidth(device)
    generator = torch.Generator(device=device).manual_seed(0)
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__} (CUDA {torch.version.cuda})")
    print(f"{channels} channels; median of {runs} CUDA-event timings after {warmup} warm-up calls")
    print(f"peak DRAM bandwidth: {peak_source}")
    print("×cuFFT, ×matmul: the other path's time over the custom op's (above 1: the custom op is faster)")
    print()
    print("| cutoffs | dtype | plane | batch | custom ms | cuFFT ms | ×cuFFT | custom graph ms | cuFFT graph ms "
          "| ×cuFFT graph | matmul ms | ×matmul | custom GB/s | % of peak |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cutoffs, (low, high) in CUTOFFS.items():
        sigma = torch.empty(channels, device=device).uniform_(low, high, generator=generator)
        for dtype_name, dtype in DTYPES.items():
            for height, width in PLANES:
                gain = gaussian_lowpass(sigma, height, width)  # fp32: the cuFFT path runs in fp32
                gain_io = gain.to(dtype)  # the matmul form runs in the I/O dtype
                for batch in BATCHES:
                    x = torch.randn(batch, channels, height, width, device=device, generator=generator).to(dtype)
                    paths = {"custom": lambda: frequency_split(x, sigma), "cufft": lambda: _cufft_split(x, gain)}
                    with torch.inference_mode():
                        eager = {name: cuda_median_ms(fn, runs, warmup) for name, fn in paths.items()}
                        graph = {name: cuda_graph_median_ms(fn, runs, warmup) for name, fn in paths.items()}
                        matmul = cuda_median_ms(lambda: _matmul_split(x, gain_io), runs, warmup)
                    row = [cutoffs, dtype_name, f"{height}x{width}", str(batch),
                           f"{eager['custom']:.4f}", f"{eager['cufft']:.4f}", f"{eager['cufft'] / eager['custom']:.2f}",
                           f"{graph['custom']:.4f}", f"{graph['cufft']:.4f}", f"{graph['cufft'] / graph['custom']:.2f}",
                           f"{matmul:.4f}", f"{matmul / eager['custom']:.2f}"]  # fmt: skip
                    if batch == BANDWIDTH_BATCH:
                        moved = 3 * x.numel() * x.element_size()  # read x, write low and high
                        achieved = moved / (graph["custom"] * 1e-3)
                        row += [f"{achieved / 1e9:.0f}", f"{100 * achieved / peak:.1f}" if peak else "n/a"]
                    else:
                        row += ["", ""]
                    print("| " + " | ".join(row) + " |", flush=True)
    return 0
