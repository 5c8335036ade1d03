"""The kernels' C launcher, built for this GPU and loaded into the process, for the torch op.

The torch op calls the very function the TensorRT plugin calls
(``binseg_launch_frequency_split`` in ``frequency_split.cu``), so both runtimes share launch
parameters and numerics. nvcc builds it once per (sources, flags, architecture) into a cache
folder (``$BINSEG_KERNEL_CACHE``, default ``~/.cache/binseg_ros/kernels``); later processes
load the cached library. It links the CUDA runtime statically and runs in the primary
context, which is the one torch uses, so torch's pointers and streams are valid in it.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import torch

from binseg_ros.errors import BackendError
from binseg_ros.kernels.build import FREQUENCY_SPLIT, FREQUENCY_SPLIT_HEADER, cached_library, compile_launcher_library

CACHE_ENV = "BINSEG_KERNEL_CACHE"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "binseg_ros" / "kernels"))


def device_arch(device: torch.device) -> str:
    """``sm_90`` for an H100, ``sm_87`` for an Orin: the cubin target of that GPU."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"sm_{major}{minor}"


@functools.cache
def launcher(arch: str) -> ctypes.CDLL:
    """The launcher library for ``arch``, built into the cache on first use and loaded once."""
    library = cached_library(
        cache_dir(),
        f"libbinseg_kernels.{arch}.so",
        (FREQUENCY_SPLIT, FREQUENCY_SPLIT_HEADER),
        arch,
        lambda scratch: compile_launcher_library(scratch, arch),
    )
    lib = ctypes.CDLL(str(library))
    lib.binseg_launch_frequency_split.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int] * 5 + [ctypes.c_void_p]
    lib.binseg_launch_frequency_split.restype = ctypes.c_int
    lib.binseg_frequency_split_smem_bytes.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.binseg_frequency_split_smem_bytes.restype = ctypes.c_size_t
    lib.binseg_frequency_split_workspace_bytes.argtypes = [ctypes.c_int] * 3
    lib.binseg_frequency_split_workspace_bytes.restype = ctypes.c_size_t
    return lib


def launch_frequency_split(x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``low, high`` of ``x`` ``[N, C, H, W]`` (fp32 or fp16, CUDA) on torch's current stream.

    Raises:
        BackendError: an unsupported dtype or shape, or a CUDA error from the launch (for
            example a plane too large for this GPU's shared memory).
    """
    if x.dtype not in (torch.float32, torch.float16):
        raise BackendError(f"frequency_split kernels take float32 or float16, got {x.dtype}")
    if x.dim() != 4 or sigma.shape != (x.shape[1],):
        raise BackendError(
            f"frequency_split expects x [N, C, H, W] and sigma [C], got {list(x.shape)}, {list(sigma.shape)}"
        )
    x = x.contiguous()
    sigma = sigma.to(device=x.device, dtype=torch.float32).contiguous()
    low, high = torch.empty_like(x), torch.empty_like(x)
    if x.numel() == 0:
        return low, high
    batch, channels, height, width = x.shape
    lib = launcher(device_arch(x.device))
    workspace_bytes = lib.binseg_frequency_split_workspace_bytes(channels, height, width)
    workspace = torch.empty(workspace_bytes, device=x.device, dtype=torch.uint8)
    with torch.cuda.device(x.device):
        status = lib.binseg_launch_frequency_split(
            x.data_ptr(), sigma.data_ptr(), low.data_ptr(), high.data_ptr(), workspace.data_ptr(),
            batch * channels, channels, height, width, int(x.dtype == torch.float16),
            torch.cuda.current_stream(x.device).cuda_stream,
        )  # fmt: skip
    if status != 0:
        smem = lib.binseg_frequency_split_smem_bytes(height, width)
        raise BackendError(
            f"frequency_split launch failed with cudaError {status} on a {height}x{width} plane "
            f"({smem / 1024:.0f} KiB of shared memory per block)"
        )
    return low, high
