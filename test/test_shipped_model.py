"""The shipped trained model: intact, small, and still segmenting real held-out MM5 frames.

The floors sit far below the figures in the model card. They catch a broken export, a
stale graph or wrong weights, not a tuned score. The fp16-typed and the int8 (Q/DQ) graphs are
held to the fp32 graphs' held-out IoU on every subset, within half a point and one point: the
accuracy budgets of an fp16 and an int8 engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.datasets import load_frame
from binseg_ros.engines.export import CARD_NAME
from binseg_ros.engines.locate import DEFAULT_MODEL
from binseg_ros.engines.manifest import Manifest
from binseg_ros.engines.quantize import INT8_FORM
from binseg_ros.forms import GRAPH_FORMS
from binseg_ros.modalities import subset_name
from binseg_ros.model import load_checkpoint
from binseg_ros.training.evaluate import robustness_table
from binseg_ros.training.split import SPLITS, load_split

SHIPPED = Path(__file__).resolve().parents[1] / "engines" / DEFAULT_MODEL
FULL_IOU_FLOOR = 0.70
SUBSET_IOU_FLOOR = 0.20
IOU_BUDGET = {"matmul-fp16": 0.005, "matmul-int8": 0.01}  # IoU an fp16 / int8 graph may lose against fp32


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    manifest = Manifest.load(SHIPPED)
    manifest.verify()  # every file present with its recorded sha256
    return manifest


def test_shipped_folder_is_trained_small_and_safe_to_load(manifest):
    assert manifest.version.startswith("balanced-"), manifest.version
    forms = {*GRAPH_FORMS, INT8_FORM}
    assert len(manifest.subsets) == 7 and all(set(e.onnx) == forms for e in manifest.subsets.values())
    size_mb = sum(f.stat().st_size for f in SHIPPED.iterdir()) / 2**20
    assert size_mb <= 40, f"shipped engine folder is {size_mb:.1f} MB"
    _net, metadata = load_checkpoint(SHIPPED / manifest.weights.file)  # torch.load(weights_only=True)
    assert metadata["version"] == manifest.version
    assert "## Held-out evaluation" in (SHIPPED / CARD_NAME).read_text()


@pytest.fixture(scope="module")
def held_out(mm5_root) -> list[dict]:
    ids = load_split(SPLITS / "mm5.yaml").held_out_ids()[::7]  # 8 frames across the held-out groups
    return [load_frame(mm5_root, frame_id) for frame_id in ids]


def test_shipped_engines_segment_held_out_frames(manifest, held_out):
    table = robustness_table(OnnxRuntimeBackend(manifest), manifest.input_size, held_out, progress=False)
    full = table["rgb+depth+thermal"]
    assert full["IoU"] >= FULL_IOU_FLOOR and full["MAE"] <= 0.05, full
    for subset in manifest.subsets.values():
        assert table[subset_name(subset.subset)]["IoU"] >= SUBSET_IOU_FLOOR, (subset_name(subset.subset), table)


@pytest.mark.parametrize("form", IOU_BUDGET)
def test_reduced_precision_graphs_keep_the_fp32_accuracy(manifest, held_out, form):
    tables = {
        name: robustness_table(OnnxRuntimeBackend(manifest, name), manifest.input_size, held_out, progress=False)
        for name in ("matmul", form)
    }
    for entry in manifest.subsets.values():
        name = subset_name(entry.subset)
        full, reduced = tables["matmul"][name]["IoU"], tables[form][name]["IoU"]
        assert abs(reduced - full) <= IOU_BUDGET[form], (name, full, reduced)
