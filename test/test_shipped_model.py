"""The shipped trained model: intact, small, and still segmenting real held-out MM5 frames.

The floors sit far below the figures in the model card. They catch a broken export, a
stale graph or wrong weights, not a tuned score.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.datasets import load_frame
from binseg_ros.engines.export import CARD_NAME
from binseg_ros.engines.locate import DEFAULT_MODEL
from binseg_ros.engines.manifest import Manifest
from binseg_ros.forms import FREQUENCY_FORMS
from binseg_ros.modalities import subset_name
from binseg_ros.model import load_checkpoint
from binseg_ros.training.evaluate import robustness_table
from binseg_ros.training.split import SPLITS, load_split

SHIPPED = Path(__file__).resolve().parents[1] / "engines" / DEFAULT_MODEL
FULL_IOU_FLOOR = 0.70
SUBSET_IOU_FLOOR = 0.20


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    manifest = Manifest.load(SHIPPED)
    manifest.verify()  # every file present with its recorded sha256
    return manifest


def test_shipped_folder_is_trained_small_and_safe_to_load(manifest):
    assert manifest.version.startswith("balanced-"), manifest.version
    assert len(manifest.subsets) == 7 and all(set(e.onnx) == set(FREQUENCY_FORMS) for e in manifest.subsets.values())
    size_mb = sum(f.stat().st_size for f in SHIPPED.iterdir()) / 2**20
    assert size_mb <= 25, f"shipped engine folder is {size_mb:.1f} MB"
    _net, metadata = load_checkpoint(SHIPPED / manifest.weights.file)  # torch.load(weights_only=True)
    assert metadata["version"] == manifest.version
    assert "## Held-out evaluation" in (SHIPPED / CARD_NAME).read_text()


def test_shipped_engines_segment_held_out_frames(manifest, mm5_root):
    ids = load_split(SPLITS / "mm5.yaml").held_out_ids()[::7]  # 8 frames across the held-out groups
    frames = [load_frame(mm5_root, frame_id) for frame_id in ids]
    table = robustness_table(OnnxRuntimeBackend(manifest), manifest.input_size, frames, progress=False)
    full = table["rgb+depth+thermal"]
    assert full["IoU"] >= FULL_IOU_FLOOR and full["MAE"] <= 0.05, full
    for subset in manifest.subsets.values():
        assert table[subset_name(subset.subset)]["IoU"] >= SUBSET_IOU_FLOOR, (subset_name(subset.subset), table)
