"""Both frequency-branch forms against numpy.fft, in fp32, on even and odd plane sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from binseg_ros.model.frequency import (
    FrequencySplit,
    gaussian_lowpass,
    spectral_filter_fft,
    spectral_filter_matmul,
)

# The network's planes at 480x640 and 240x320 inputs, plus odd and degenerate sizes.
SIZES = [(120, 160), (60, 80), (30, 40), (15, 20), (8, 10), (7, 9), (13, 1), (1, 6), (5, 5)]
FORMS = {"fft": spectral_filter_fft, "matmul": spectral_filter_matmul}


def numpy_reference(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
    height, width = x.shape[-2:]
    return np.fft.irfft2(np.fft.rfft2(x.astype(np.float64)) * gain.astype(np.float64), s=(height, width))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("form", FORMS)
def test_spectral_filter_matches_numpy(form, size):
    rng = np.random.default_rng(hash(size) % 2**32)
    x = rng.standard_normal((2, 6, *size)).astype(np.float32)
    sigma = torch.from_numpy(rng.uniform(0.02, 0.4, 6).astype(np.float32))
    gain = gaussian_lowpass(sigma, *size)
    out = FORMS[form](torch.from_numpy(x), gain).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, numpy_reference(x, gain.numpy()), rtol=0, atol=1e-5)


@pytest.mark.parametrize("form", FORMS)
def test_arbitrary_hermitian_gain_matches_numpy(form):
    """Not just Gaussians: any real gain that is even along H (so the result is real)."""
    rng = np.random.default_rng(7)
    height, width = 15, 20
    half = rng.uniform(0, 1, (4, height, width // 2 + 1)).astype(np.float32)
    gain = (half + half[:, (-np.arange(height)) % height]) / 2  # G[k] == G[-k] along H
    x = rng.standard_normal((1, 4, height, width)).astype(np.float32)
    out = FORMS[form](torch.from_numpy(x), torch.from_numpy(gain)).numpy()
    np.testing.assert_allclose(out, numpy_reference(x, gain), rtol=0, atol=1e-5)


def test_gaussian_lowpass_matches_fftfreq_grid():
    sigma = torch.tensor([0.1, 0.25])
    gain = gaussian_lowpass(sigma, 15, 20).numpy()
    fy = np.fft.fftfreq(15)[:, None]
    fx = np.fft.rfftfreq(20)[None, :]
    expected = np.exp(-(fy**2 + fx**2)[None] / (2 * sigma.numpy()[:, None, None] ** 2))
    np.testing.assert_allclose(gain, expected, rtol=1e-6, atol=1e-7)
    assert gain[:, 0, 0] == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("form", FORMS)
def test_split_low_plus_high_is_identity_and_low_is_smooth(form):
    torch.manual_seed(0)
    split = FrequencySplit(3, form)
    x = torch.randn(1, 3, 30, 40)
    low, high = split(x)
    torch.testing.assert_close(low + high, x, rtol=0, atol=1e-6)
    # The DC (mean) passes unchanged into low; high carries no DC.
    torch.testing.assert_close(low.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)), rtol=0, atol=1e-5)
    assert high.mean(dim=(-2, -1)).abs().max() < 1e-5
    # Low-pass: less total variation than the input.
    assert low.diff(dim=-1).abs().mean() < 0.5 * x.diff(dim=-1).abs().mean()


def test_both_forms_agree_and_train():
    """Same weights, same output; gradients reach the learnable cutoff through either form."""
    torch.manual_seed(1)
    x = torch.randn(2, 4, 15, 20)
    grads = {}
    outputs = {}
    for form in FORMS:
        split = FrequencySplit(4, form)
        low, _ = split(x)
        low.square().sum().backward()
        outputs[form], grads[form] = low.detach(), split.log_sigma.grad
    torch.testing.assert_close(outputs["fft"], outputs["matmul"], rtol=0, atol=1e-5)
    assert torch.isfinite(grads["fft"]).all() and grads["fft"].abs().sum() > 0
    torch.testing.assert_close(grads["fft"], grads["matmul"], rtol=1e-3, atol=1e-4)


def test_unknown_form_is_rejected():
    with pytest.raises(ValueError, match="unknown frequency form 'cufft'"):
        FrequencySplit(4, "cufft")  # type: ignore[arg-type]
