"""The CUDA path on a GPU: the kernels' numerics, the network, the torch backend.

Skipped without a CUDA GPU; ``bash bench/run_gpu.sh`` runs it on a machine with one. Data:
the shipped trained model and the four MM5 frames in ``binseg_ros/sample`` (no MM5 folder).

Error scale of the op comparisons: ``max |op - reference| / max(1, max |x| over the plane)``.
Rounding error grows with the magnitude of the values (fp16 keeps 11 significant bits, so a
plane peaking at 80 is rounded in steps of 1/16 to 1/32), and real decoder features reach
tens; dividing by the plane's peak makes one bound mean the same on them and on unit-scale
random data, where it is simply the absolute error. Bounds: 1e-4 for fp32, 2e-2 for fp16
I/O. The reference is the ``fft`` form's functions (``gaussian_lowpass``,
``spectral_filter_fft``) in float64 on the very input the op gets (for fp16, the
fp16-rounded values), so only the op's own error is measured.

cuDNN runs fp32 convolutions in TF32 by default on this GPU generation; the network-level
comparisons switch that off so that 1e-4 / 1e-3 measure the frequency path, not TF32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import frame_inputs

from binseg_ros.backends.torch import TorchBackend
from binseg_ros.core.preprocess import prepare_images
from binseg_ros.datasets import list_ids, load_frame
from binseg_ros.engines.locate import DEFAULT_MODEL
from binseg_ros.engines.manifest import Manifest
from binseg_ros.errors import BackendError
from binseg_ros.kernels.ops import frequency_split
from binseg_ros.modalities import MODALITIES, all_subsets, subset_name
from binseg_ros.model import BinSegNet, load_checkpoint
from binseg_ros.model.frequency import FrequencySplit, gaussian_lowpass, spectral_filter_fft

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (bash bench/run_gpu.sh runs these where there is one)"
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "engines" / DEFAULT_MODEL
SAMPLE = REPO / "binseg_ros" / "sample"
# Decoder planes at 480×640 (120×160 ... 15×20) and 240×320 (60×80 ... 8×10) inputs.
PLANES = [(120, 160), (60, 80), (30, 40), (15, 20), (8, 10)]
CHANNELS = 64
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2}
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])


@pytest.fixture(scope="module", autouse=True)
def fp32_convolutions():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def sample_frames() -> list[dict[str, np.ndarray]]:
    """The four shipped sample frames (held-out MM5 scenes), sensor modalities only."""
    return [frame_inputs(load_frame(SAMPLE, frame_id)) for frame_id in list_ids(SAMPLE)]


@pytest.fixture(scope="module")
def shipped_net() -> BinSegNet:
    return load_checkpoint(SHIPPED / "weights.pt")[0].cuda().eval()


def batch_inputs(
    frames: list[dict[str, np.ndarray]], size: tuple[int, int], subset: tuple[str, ...] = MODALITIES
) -> dict[str, torch.Tensor]:
    """``[len(frames), C, H, W]`` CUDA tensors of the frames, preprocessed as the node does."""
    prepared = [prepare_images(frame, size) for frame in frames]
    return {m: torch.from_numpy(np.concatenate([p[m] for p in prepared])).cuda() for m in subset}


def reference_split(x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``fft`` form in float64: ``low = irfft2(rfft2(x) · G)``, ``high = x - low``."""
    signal = x.double()
    low = spectral_filter_fft(signal, gaussian_lowpass(sigma.double(), *x.shape[-2:]))
    return low, signal - low


def check_split(x: torch.Tensor, sigma: torch.Tensor) -> None:
    """The op on ``x`` (fp32 or fp16) against the float64 reference of the same values."""
    low, high = frequency_split(x, sigma)
    assert low.dtype == high.dtype == x.dtype and low.shape == high.shape == x.shape
    reference = reference_split(x, sigma)
    scale = x.double().abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1.0)
    for name, out, expected in zip(("low", "high"), (low, high), reference, strict=True):
        error = ((out.double() - expected).abs() / scale).max().item()
        assert error <= TOLERANCE[x.dtype], (
            f"{name} of {list(x.shape)} {x.dtype}: scaled error {error:.2e} > {TOLERANCE[x.dtype]:.0e}"
        )


def decoder_features(net: BinSegNet, frames, size: tuple[int, int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, sigma)`` at every FrequencySplit of the decoder, from the full subset on real frames."""
    captured = []

    def hook(module: FrequencySplit, args: tuple[torch.Tensor, ...], output: object) -> None:
        captured.append((args[0].detach().clone(), module.log_sigma.detach().exp()))

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, FrequencySplit)]
    try:
        net.set_frequency_form("fft")
        with torch.no_grad():
            net(batch_inputs(frames, size))
    finally:
        for handle in handles:
            handle.remove()
    return captured


def probability(net: BinSegNet, inputs: dict[str, torch.Tensor], form: str) -> torch.Tensor:
    net.set_frequency_form(form)  # type: ignore[arg-type]
    with torch.no_grad():
        return torch.sigmoid(net(inputs))


# (a) the op against the fft reference ------------------------------------------------------


@DTYPES
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("plane", PLANES, ids=lambda p: f"{p[0]}x{p[1]}")
def test_op_matches_fft_reference_on_random_features(plane, batch, dtype):
    generator = torch.Generator(device="cuda").manual_seed(1000 * plane[0] + plane[1] + batch)
    x = torch.randn(batch, CHANNELS, *plane, device="cuda", generator=generator)
    sigma = torch.empty(CHANNELS, device="cuda").uniform_(0.02, 0.4, generator=generator)
    check_split(x.to(dtype), sigma)


@DTYPES
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("size", [(240, 320), (480, 640)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_op_matches_fft_reference_on_decoder_features(shipped_net, sample_frames, size, batch, dtype):
    features = decoder_features(shipped_net, sample_frames[:batch], size)
    planes = {tuple(x.shape[-2:]) for x, _ in features}
    assert planes == {(-(-size[0] // s), -(-size[1] // s)) for s in (4, 8, 16, 32)}, planes
    for x, sigma in features:
        assert x.shape[0] == batch
        check_split(x.to(dtype), sigma)


# (b) the whole network: kernel form against fft form ---------------------------------------


@pytest.mark.parametrize("subset", all_subsets(), ids=subset_name)
def test_network_kernel_form_matches_fft_form(shipped_net, sample_frames, subset):
    inputs = batch_inputs(sample_frames, (240, 320), subset)
    reference = probability(shipped_net, inputs, "fft")
    kernel = probability(shipped_net, inputs, "kernel")
    assert ((reference > 0.01) & (reference < 0.99)).any(), "saturated output: the comparison would prove nothing"
    assert (kernel - reference).abs().max().item() <= 1e-4


def test_network_kernel_form_matches_fft_form_at_480x640(shipped_net, sample_frames):
    inputs = batch_inputs(sample_frames[:2], (480, 640))
    reference = probability(shipped_net, inputs, "fft")
    assert (probability(shipped_net, inputs, "kernel") - reference).abs().max().item() <= 1e-4


# (c) the torch backend's CUDA path --------------------------------------------------------


def test_torch_backend_cuda_path_matches_eager_and_onnxruntime(sample_frames):
    pytest.importorskip("onnxruntime")
    from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend

    manifest = Manifest.load(SHIPPED)
    graphs = TorchBackend.from_manifest(manifest, "cuda")
    eager = TorchBackend.from_manifest(manifest, "cuda", cuda_graphs=False)
    assert graphs.cuda_graphs and not eager.cuda_graphs
    reference = OnnxRuntimeBackend(manifest, "matmul")  # CPU
    frames = [prepare_images(frame, manifest.input_size) for frame in sample_frames[:2]]
    for subset in all_subsets():
        feed = {m: frames[0][m] for m in subset}
        result = graphs.run(feed)
        assert result.shape == manifest.input_size and result.dtype == np.float32
        np.testing.assert_allclose(result, eager.run(feed), rtol=0, atol=1e-6, err_msg=subset_name(subset))
        np.testing.assert_allclose(result, reference.run(feed), rtol=0, atol=1e-3, err_msg=subset_name(subset))
    # Each call returns its own array: the next frame through the same graph leaves it alone.
    first = graphs.run(frames[0])
    second = graphs.run(frames[1])
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, graphs.run(frames[0]))


# (d) the op inside a CUDA graph ------------------------------------------------------------


@DTYPES
def test_op_captured_in_a_cuda_graph_matches_eager(dtype):
    generator = torch.Generator(device="cuda").manual_seed(6)
    static_x = torch.randn(4, CHANNELS, 60, 80, device="cuda", generator=generator).to(dtype)
    sigma = torch.empty(CHANNELS, device="cuda").uniform_(0.02, 0.4, generator=generator)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture: builds and loads the launcher
        frequency_split(static_x, sigma)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        low, high = frequency_split(static_x, sigma)
    fresh = torch.randn(static_x.shape, device="cuda", generator=generator).to(dtype)
    static_x.copy_(fresh)
    graph.replay()  # capture ran nothing: low/high hold results only if the replay launched the kernels
    eager_low, eager_high = frequency_split(fresh, sigma)
    torch.cuda.synchronize()
    assert torch.equal(low, eager_low) and torch.equal(high, eager_high)


# (e) the launcher's error path -------------------------------------------------------------


def _too_large() -> tuple[torch.Tensor, torch.Tensor]:
    """A 400×400 plane: ~640 KiB of shared memory per block, over any GPU's limit (227 KiB on H100)."""
    return torch.randn(1, 2, 400, 400, device="cuda"), torch.full((2,), 0.1, device="cuda")


def test_plane_too_large_for_shared_memory_raises_backend_error():
    with pytest.raises(BackendError, match="shared memory"):
        frequency_split(*_too_large())
    torch.cuda.synchronize()  # the context survived: no sticky error


def test_op_works_again_after_a_failed_launch():
    """A refused launch must not leave an error behind for the next, valid call to report."""
    with pytest.raises(BackendError):
        frequency_split(*_too_large())
    generator = torch.Generator(device="cuda").manual_seed(7)
    check_split(torch.randn(1, 8, 15, 20, device="cuda", generator=generator), torch.full((8,), 0.1, device="cuda"))
