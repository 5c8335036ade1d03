"""Shared fixtures: the MM5 data beside the clone, a realistic network, an exported engine folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from binseg_ros.core.preprocess import prepare_images
from binseg_ros.datasets import list_ids, load_frame
from binseg_ros.modalities import all_subsets
from binseg_ros.model import BinSegNet, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
MM5 = Path(os.environ.get("BINSEG_MM5", REPO.parent / "shared" / "data" / "mm5"))
EXPORT_SIZE = (480, 640)


@pytest.fixture(scope="session")
def mm5_root() -> Path:
    """The MM5 folder; a missing folder fails loudly instead of skipping real-data checks."""
    if not (MM5 / "RGB").is_dir():
        pytest.fail(f"MM5 data not found at {MM5}: put ../shared/data/mm5 beside the clone or set BINSEG_MM5")
    return MM5


@pytest.fixture(scope="session")
def real_frames(mm5_root: Path) -> list[dict[str, np.ndarray]]:
    """Four real frames spread over the dataset, in sensor units."""
    ids = list_ids(mm5_root)
    return [load_frame(mm5_root, ids[i]) for i in np.linspace(0, len(ids) - 1, 4).astype(int)]


@pytest.fixture(scope="session")
def calibrated_net(real_frames: list[dict[str, np.ndarray]]) -> BinSegNet:
    """A seeded network whose BatchNorm statistics come from real frames over all subsets.

    Untrained weights with default BatchNorm statistics saturate the sigmoid, which would let
    a wrong export pass a 1e-4 probability comparison; realistic statistics keep outputs in
    the sigmoid's sensitive range.
    """
    torch.manual_seed(0)
    net = BinSegNet()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration passes
    net.train()
    with torch.no_grad():
        for frame in real_frames:
            inputs = {m: torch.from_numpy(a) for m, a in prepare_images(frame_inputs(frame), (240, 320)).items()}
            for subset in all_subsets():
                net({m: inputs[m] for m in subset})
    return net.eval()


@pytest.fixture(scope="session")
def checkpoint(calibrated_net: BinSegNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(calibrated_net, tmp_path_factory.mktemp("ckpt") / "calibrated.pt", {"version": "test"})


@pytest.fixture(scope="session")
def engine_folder(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """All 7 subsets × both frequency forms exported at 480×640 (the slow fixture: ~2 min)."""
    from binseg_ros.engines.export import export_engine_folder

    return export_engine_folder(checkpoint, tmp_path_factory.mktemp("engines"), EXPORT_SIZE, progress=False)


def frame_inputs(frame: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The sensor modalities of a dataset frame (drops the label)."""
    return {m: frame[m] for m in ("rgb", "depth", "thermal")}


def random_inputs(size: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Random ``[1, C, H, W]`` inputs in each modality's sensor range."""
    rng = np.random.default_rng(seed)
    return {
        "rgb": rng.uniform(0, 255, (1, 3, *size)).astype(np.float32),
        "depth": rng.uniform(0.0, 2.0, (1, 1, *size)).astype(np.float32),
        "thermal": rng.uniform(17900, 22400, (1, 1, *size)).astype(np.float32),
    }


@pytest.fixture(scope="session")
def fast_engine(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """All 7 subsets, matmul form, at 96x128: inference that keeps up for the node tests."""
    from binseg_ros.engines.export import export_engine_folder

    return export_engine_folder(
        checkpoint, tmp_path_factory.mktemp("fast"), (96, 128), forms=("matmul",), progress=False
    )


@pytest.fixture(scope="module")
def ros_harness():
    """rclpy initialised in a unique localhost-only domain, and the harness node."""
    import rclpy
    from rosgraph import Harness, ros_environment

    os.environ.update(ros_environment())
    rclpy.init()
    harness = Harness()
    yield harness
    harness.destroy_node()
    rclpy.try_shutdown()
