"""A real rig's bag: held-out MM5 frames rendered into the shipped example rig's cameras (own
resolution, pose and lens), raw and compressed, evaluated with and without its calibration.

The shipped model runs every bag, so the numbers are the ones a user gets: registered back into
the RGB camera, the rig bag must segment within 2 IoU points of the registered bag (3 with
compressed transport), with every set fused from all three cameras. Without the calibration,
depth and thermal cannot be used at all: that is the failure this feature exists for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.bags.evaluate import BagEvaluation, BagEvaluator
from binseg_ros.bags.groundtruth import GroundTruth
from binseg_ros.bags.make import DEFAULT_GT_TOPIC, MakeBagConfig, make_bag
from binseg_ros.calibration.files import load_rig
from binseg_ros.calibration.model import Rig
from binseg_ros.core.compressed import transport_topic
from binseg_ros.core.sync import SyncConfig
from binseg_ros.engines.locate import DEFAULT_MODEL, open_engine_folder
from binseg_ros.training.split import SPLITS, load_split

REPO = Path(__file__).resolve().parents[1]
RIG = REPO / "calibration" / "example" / "rig.yaml"
FRAMES = 12


@pytest.fixture(scope="module")
def bags(mm5_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ids = load_split(SPLITS / "mm5.yaml").held_out_ids()[:FRAMES]
    root = tmp_path_factory.mktemp("rig_bags")
    configs = {
        "registered": MakeBagConfig(),
        "rig": MakeBagConfig(rig=load_rig(RIG)),
        "rig_compressed": MakeBagConfig(rig=load_rig(RIG), compressed=True),
    }
    for name, config in configs.items():
        make_bag(mm5_root, ids, root / name, config, progress=False)
    return {name: root / name for name in configs}


def _evaluate(bag: Path, rig: Rig | None, compressed: bool = False) -> BagEvaluation:
    manifest = open_engine_folder(REPO / "engines" / DEFAULT_MODEL)
    topics = MakeBagConfig(compressed=compressed).image_topics()
    evaluator = BagEvaluator(OnnxRuntimeBackend(manifest), manifest.input_size, SyncConfig(), topics, rig=rig)
    return evaluator.run(bag, GroundTruth.from_topic(bag, DEFAULT_GT_TOPIC), progress=False)


def test_the_rig_bag_is_what_the_rig_publishes(bags):
    rig = load_rig(RIG)
    evaluation = _evaluate(bags["rig"], None)  # uncalibrated: the images as they are in the bag
    # Depth and thermal arrive at their own cameras' sizes, so without a calibration they are
    # refused and every mask comes from RGB alone.
    assert {r.subset for r in evaluation.records} == {("rgb",)}
    assert evaluation.drops["resolution_mismatch"] == 2 * FRAMES
    assert rig.resolution("depth") != rig.resolution("rgb") != rig.resolution("thermal")
    assert transport_topic("/depth/image", "compressedDepth") == "/depth/image/compressedDepth"


@pytest.mark.parametrize(("bag", "compressed", "points"), [("rig", False, 0.02), ("rig_compressed", True, 0.03)])
def test_registered_rig_bag_segments_like_the_registered_bag(bags, bag, compressed, points):
    reference = _evaluate(bags["registered"], None)
    calibrated = _evaluate(bags[bag], load_rig(RIG), compressed)
    assert calibrated.accounting_balanced and calibrated.masks == reference.masks == FRAMES
    assert {r.subset for r in calibrated.records} == {("rgb", "depth", "thermal")}  # fusion runs
    iou, reference_iou = calibrated.overall()["IoU"], reference.overall()["IoU"]
    assert iou >= reference_iou - points, (iou, reference_iou)
    assert calibrated.overall()["BF"] >= reference.overall()["BF"] - points
