"""The FFT frequency branch: ``low = irfft2(rfft2(x) * G)``, ``high = x - low``.

Two implementations share one interface (:data:`FREQUENCY_FORMS`):

- ``fft``: ``torch.fft`` — the reference. Exports to ONNX ``DFT``, which TensorRT only
  parses from 11.2 on.
- ``matmul``: the same real 2-D DFT written as products with precomputed cosine / sine
  matrices. No FFT op anywhere, so ONNX Runtime, every TensorRT version and any other
  runtime can take it; at the network's small plane sizes (≤ 120×160) the matmuls are cheap.
- ``kernel``: the project's op ``torch.ops.binseg.frequency_split`` (the CUDA kernels on a
  GPU, their separable-convolution reference elsewhere); it exports as the TensorRT plugin
  node. Inference only (:mod:`binseg_ros.kernels.ops`).

The filter ``G`` is real, non-negative and even in both frequency axes (a per-channel
Gaussian low-pass with a learnable cutoff), so the filtered spectrum stays Hermitian and
``low`` is exactly the real result the inverse transform gives. Because the cutoff is
defined in cycles per sample, the same weights work at every plane size (60×80, 15×20, ...).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from binseg_ros.forms import FREQUENCY_FORMS, FrequencyForm
from binseg_ros.kernels.ops import frequency_split, signed_frequencies


def gaussian_lowpass(sigma: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-channel Gaussian low-pass over the half spectrum ``rfft2`` keeps.

    Args:
        sigma: ``[C]`` cutoffs in cycles per sample (0.5 is Nyquist).
        height, width: the spatial size of the planes being filtered.

    Returns:
        ``[C, height, width // 2 + 1]`` real gains in (0, 1].
    """
    fy = signed_frequencies(height).to(sigma)
    fx = torch.arange(width // 2 + 1, dtype=sigma.dtype, device=sigma.device) / width
    radius2 = fy.view(1, -1, 1) ** 2 + fx.view(1, 1, -1) ** 2
    return torch.exp(-radius2 / (2.0 * sigma.view(-1, 1, 1) ** 2))


def spectral_filter_fft(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """Reference form: ``irfft2(rfft2(x) * gain)`` over the last two axes."""
    height, width = x.shape[-2:]
    spectrum = torch.fft.rfft2(x)
    return torch.fft.irfft2(spectrum * gain, s=(height, width))


def _dft_angle(rows: int, cols: int, n: int) -> torch.Tensor:
    """``2π (j k mod n) / n`` for ``j < rows``, ``k < cols``; the modulo keeps fp32 angles exact."""
    j = torch.arange(rows, dtype=torch.int64).view(-1, 1)
    k = torch.arange(cols, dtype=torch.int64).view(1, -1)
    return (j * k % n).to(torch.float32) * (2.0 * math.pi / n)


def spectral_filter_matmul(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """The same operator as :func:`spectral_filter_fft` with real DFT matrices only.

    Along W a real DFT to ``W//2+1`` bins, along H a full complex DFT (real and imaginary
    parts carried separately), the real gain, then the inverses. The inverse along W is the
    ``c2r`` transform: bins other than DC and (even-W) Nyquist count twice, and the sine
    rows of DC and Nyquist vanish, which drops their imaginary parts exactly as ``irfft`` does.
    """
    height, width = x.shape[-2:]
    bins = width // 2 + 1
    angle_w = _dft_angle(width, bins, width).to(x)  # [W, bins]
    cos_w, sin_w = torch.cos(angle_w), torch.sin(angle_w)
    angle_h = _dft_angle(height, height, height).to(x)  # [H, H], symmetric
    cos_h, sin_h = torch.cos(angle_h), torch.sin(angle_h)
    k = torch.arange(bins, device=x.device)
    twice = torch.where((k == 0) | (2 * k == width), 1.0, 2.0).to(x)
    inv_cos_w = (cos_w * twice).transpose(0, 1) / (height * width)  # [bins, W]
    inv_sin_w = (sin_w * twice).transpose(0, 1) / (height * width)

    # Forward: X = F_H · x · F_W, with F = cos − i·sin.
    xr = x @ cos_w
    xi = x @ -sin_w
    yr = (cos_h @ xr + sin_h @ xi) * gain
    yi = (cos_h @ xi - sin_h @ xr) * gain
    # Inverse along H (F_H* = cos + i·sin); the 1/(H·W) scale sits in the W matrices.
    zr = cos_h @ yr - sin_h @ yi
    zi = cos_h @ yi + sin_h @ yr
    return zr @ inv_cos_w - zi @ inv_sin_w


SPECTRAL_FILTERS = {"fft": spectral_filter_fft, "matmul": spectral_filter_matmul}


class FrequencySplit(nn.Module):
    """Splits features into low and high frequencies with a learnable per-channel cutoff.

    ``form`` picks the implementation; it can be switched after training (the weights are
    the same), which is how one checkpoint exports both the FFT and the matmul graphs.
    """

    def __init__(self, channels: int, form: FrequencyForm = "fft", init_cutoff: float = 0.08) -> None:
        super().__init__()
        if form not in FREQUENCY_FORMS:
            raise ValueError(f"unknown frequency form {form!r}; expected one of {FREQUENCY_FORMS}")
        self.form: FrequencyForm = form
        self.log_sigma = nn.Parameter(torch.full((channels,), math.log(init_cutoff)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``low, high`` in the dtype of ``x``; the filter itself runs at the cutoffs' precision
        (fp32 in an fp16 network, see :meth:`~binseg_ros.model.network.BinSegNet.to_half`)."""
        sigma = self.log_sigma.exp()
        if self.form == "kernel":
            return frequency_split(x, sigma)
        signal = x.to(sigma.dtype)
        gain = gaussian_lowpass(sigma, x.shape[-2], x.shape[-1])
        low = SPECTRAL_FILTERS[self.form](signal, gain)
        return low.to(x.dtype), (signal - low).to(x.dtype)
