"""``torch.ops.binseg.frequency_split``: the frequency branch as one torch custom op.

``low, high = frequency_split(x, sigma)`` for ``x`` of shape ``[N, C, H, W]`` and per-channel
cutoffs ``sigma`` ``[C]`` (cycles per sample) is the same operator as
:class:`binseg_ros.model.frequency.FrequencySplit` with the ``fft`` form, computed the way the
CUDA kernels compute it: as the separable circular convolution ``low = K_H · x · K_W`` whose
taps are the inverse DFT of the Gaussian gain (see ``frequency_split.cu`` for the derivation).

- CUDA: the project's kernels, through the same C launcher the TensorRT plugin calls, built
  by nvcc for this GPU on first use (:mod:`binseg_ros.kernels.launcher`) and launched on
  torch's current stream, so the op composes with streams and CUDA-graph capture.
- Every other device: the same separable convolution in torch (the reference the CUDA
  numerics are tested against, and what exports and CPU tests run).
- Fake (meta) kernel: shapes only, for ``torch.export``/``torch.compile`` and ONNX export,
  where the op becomes the ``BinsegFrequencySplit`` plugin node (:mod:`binseg_ros.kernels.plugin_identity`).

Inference only: no autograd formula is registered, so a backward through the op raises
torch's "no autograd kernel" error; training uses the ``fft`` form.
"""

from __future__ import annotations

import math

import torch

OP_NAME = "binseg::frequency_split"


def signed_frequencies(n: int) -> torch.Tensor:
    """``numpy.fft.fftfreq(n)`` built from ``arange`` so it traces into any graph."""
    k = torch.arange(n, dtype=torch.float32)
    return torch.where(k < (n + 1) // 2, k, k - n) / n


def lowpass_taps(sigma: torch.Tensor, n: int) -> torch.Tensor:
    """``[C, n]`` circular taps ``k[d] = (1/n) Σ_k g(f_k) cos(2π k d / n)`` of the Gaussian gain.

    ``g(f) = exp(-f² / 2σ²)`` over the signed frequencies ``f_k``; the phase ``k·d mod n`` is
    reduced in integers so the angles stay exact in fp32, as in ``binseg_lowpass_taps``.
    """
    k = torch.arange(n, device=sigma.device)
    signed = signed_frequencies(n).to(sigma.device)
    gain = torch.exp(-(signed**2) / (2.0 * sigma.float().view(-1, 1) ** 2))  # [C, n]
    phase = (k.view(-1, 1) * k.view(1, -1)) % n  # [k, d]
    cosine = torch.cos(phase.to(torch.float32) * (2.0 * math.pi / n))
    return gain @ cosine / n


def circulant(taps: torch.Tensor) -> torch.Tensor:
    """``[C, n, n]`` matrices ``K[i][j] = k[(i - j) mod n]``; symmetric because ``g`` is even."""
    n = taps.shape[-1]
    index = torch.arange(n, device=taps.device)
    return taps[:, (index.view(-1, 1) - index.view(1, -1)) % n]


@torch.library.custom_op(OP_NAME, mutates_args=())
def frequency_split(x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference implementation (every device without its own kernel): fp32 separable convolution."""
    height, width = x.shape[-2:]
    kernel_h = circulant(lowpass_taps(sigma, height))
    kernel_w = circulant(lowpass_taps(sigma, width))
    signal = x.float()
    low = kernel_h @ signal @ kernel_w
    return low.to(x.dtype), (signal - low).to(x.dtype)


@frequency_split.register_fake
def _frequency_split_fake(x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    torch._check(x.dim() == 4, lambda: f"frequency_split expects [N, C, H, W], got {x.dim()} dims")
    torch._check(sigma.shape == (x.shape[1],), lambda: f"sigma must be [{x.shape[1]}], got {list(sigma.shape)}")
    return torch.empty_like(x), torch.empty_like(x)


@frequency_split.register_kernel("cuda")
def _frequency_split_cuda(x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from binseg_ros.kernels.launcher import launch_frequency_split

    return launch_frequency_split(x, sigma)
