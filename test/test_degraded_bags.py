"""Bags with degraded sensors on real MM5 frames: ``make-bag --degrade`` writes exactly the window's
images degraded (raw and compressed), the bag keeps its windows, bad specs are refused with what is
wrong, and ``evaluate --bag`` scores each window over its own masks, next to the clean ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.bags.evaluate import BagEvaluator
from binseg_ros.bags.groundtruth import GroundTruth
from binseg_ros.bags.io import BagWriter, bag_annotations, image_message, read_messages
from binseg_ros.bags.make import (
    DEFAULT_GT_TOPIC,
    DEFAULT_TOPICS,
    DEGRADE_KEY,
    START_NS,
    BagSummary,
    DegradeSchedule,
    DegradeWindow,
    MakeBagConfig,
    make_bag,
)
from binseg_ros.bags.report import window_table
from binseg_ros.cli import main
from binseg_ros.core.compressed import decode, is_compressed
from binseg_ros.core.messages import image_view, stamp_ns
from binseg_ros.degrade import STRENGTH
from binseg_ros.engines.locate import DEFAULT_MODEL, open_engine_folder
from binseg_ros.errors import BagError, InputError
from binseg_ros.training.split import SPLITS, load_split

SIZE = (120, 160)
FRAMES = 12  # 0.8 s at the default 15 Hz


@pytest.fixture(scope="module")
def ids() -> list[str]:
    return load_split(SPLITS / "mm5.yaml").held_out_ids()[:FRAMES]


def _window(text: str) -> DegradeSchedule:
    return DegradeSchedule((DegradeWindow.parse(text),))


def _images(bag: Path, topic: str) -> dict[int, np.ndarray]:
    """Stamp → the image as a subscriber decodes it, raw or compressed."""
    return {
        stamp_ns(m.msg.header): decode(m.msg)[1] if is_compressed(m.msg) else image_view(m.msg)
        for m in read_messages(bag, [topic])
    }


def _pair(
    mm5_root: Path, ids: list[str], tmp_path: Path, degrade: DegradeSchedule, **config: Any
) -> tuple[Path, Path, BagSummary]:
    """The same frames as a clean bag and as a degraded one (same seed: same stamps and drops)."""
    clean, degraded = tmp_path / "clean", tmp_path / "degraded"
    make_bag(mm5_root, ids, clean, MakeBagConfig(size=SIZE, **config), progress=False)
    summary = make_bag(mm5_root, ids, degraded, MakeBagConfig(size=SIZE, degrade=degrade, **config), progress=False)
    return clean, degraded, summary


def _seconds(stamp: int) -> float:
    return (stamp - START_NS) * 1e-9


@pytest.mark.parametrize("compressed", [False, True])
def test_a_black_window_blacks_out_exactly_its_images(mm5_root, ids, tmp_path, compressed):
    degrade = _window("rgb:black:0.2:0.5")
    clean, degraded, summary = _pair(mm5_root, ids, tmp_path, degrade, compressed=compressed, drop_probability=0.1)
    topics = MakeBagConfig(compressed=compressed).image_topics()
    before, after = _images(clean, topics["rgb"]), _images(degraded, topics["rgb"])
    assert before.keys() == after.keys()
    inside = [s for s in after if 0.2 <= _seconds(s) < 0.5]
    assert summary.degraded == {"rgb:black:0.2:0.5": len(inside)} and len(inside) >= 3
    for stamp, image in after.items():
        if stamp in inside:
            assert not image.any(), _seconds(stamp)
        else:
            assert image.any() and np.array_equal(image, before[stamp]), _seconds(stamp)
    for topic in (topics["depth"], topics["thermal"], DEFAULT_GT_TOPIC):  # other cameras and the labels untouched
        assert [bytes(m.raw) for m in read_messages(clean, [topic])] == [
            bytes(m.raw) for m in read_messages(degraded, [topic])
        ], topic
    assert DegradeSchedule.from_bag(degraded) == degrade
    assert DegradeSchedule.from_bag(clean) == DegradeSchedule() and bag_annotations(clean) == {}


def test_a_frozen_camera_repeats_the_windows_first_image(mm5_root, ids, tmp_path):
    clean, degraded, _ = _pair(mm5_root, ids, tmp_path, _window("thermal:frozen:0.25:0.65"))
    before, after = _images(clean, DEFAULT_TOPICS["thermal"]), _images(degraded, DEFAULT_TOPICS["thermal"])
    inside = sorted(s for s in after if 0.25 <= _seconds(s) < 0.65)
    assert len(inside) >= 5
    first = before[inside[0]]
    assert all(np.array_equal(after[s], first) for s in inside)
    assert not all(np.array_equal(before[s], first) for s in inside)  # the scene did move on
    assert all(np.array_equal(after[s], before[s]) for s in after if s not in inside)


def test_depth_holes_invalidate_about_the_strengths_fraction(mm5_root, ids, tmp_path):
    clean, degraded, _ = _pair(mm5_root, ids, tmp_path, _window("depth:holes:0.1:0.7"))
    before, after = _images(clean, DEFAULT_TOPICS["depth"]), _images(degraded, DEFAULT_TOPICS["depth"])
    inside = [s for s in after if 0.1 <= _seconds(s) < 0.7]
    assert len(inside) >= 8
    holed = []  # per image in the window: the fraction of the sensor's valid pixels that became holes
    for stamp, image in after.items():
        valid = image > 0
        assert np.array_equal(image[valid], before[stamp][valid])  # holes only: no pixel is changed otherwise
        if stamp in inside:
            holed.append((~valid[before[stamp] > 0]).mean())
        else:
            assert np.array_equal(image, before[stamp])
    assert all(abs(fraction - STRENGTH["holes"]) < 0.1 for fraction in holed), holed
    assert np.mean(holed) == pytest.approx(STRENGTH["holes"], abs=0.04)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("rgb:black:1", "expected MODALITY:KIND:START_S:END_S"),
        ("rgb:black:1:2:3", "expected MODALITY:KIND:START_S:END_S"),
        ("sonar:black:1:2", "unknown modality 'sonar'"),
        ("depth:dark:1:2", "depth has no degradation 'dark'; expected one of holes, zeros, frozen"),
        ("rgb:dark:one:2", "START and END must be seconds, got 'one' and '2'"),
        ("rgb:dark:2:1", "need 0 <= START < END, got START 2 and END 1"),
        ("rgb:dark:1:1", "need 0 <= START < END, got START 1 and END 1"),
        ("rgb:dark:-1:1", "need 0 <= START < END"),
    ],
)
def test_bad_degrade_specs_are_refused_with_what_is_wrong(spec, message):
    with pytest.raises(InputError) as error:
        DegradeWindow.parse(spec)
    assert str(error.value).startswith(f"--degrade {spec!r}: {message}")


def test_make_bag_refuses_a_bad_degrade_before_writing(mm5_root, tmp_path, capsys):
    bag = tmp_path / "bag"
    base = ["make-bag", "--data", str(mm5_root), "--out", str(bag), "--limit", "2", "--size", "60x80"]
    for extra, message in [
        (["--degrade", "rgb:black:2:1"], "--degrade 'rgb:black:2:1': need 0 <= START < END, got START 2 and END 1"),
        (
            ["--degrade", "rgb:dark:0:1", "--degrade", "rgb:dark:0:1.0"],
            "degradation window rgb:dark:0:1 is given twice",
        ),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith(f"binseg make-bag: error: {message}"), err
    assert not bag.exists()


def test_evaluate_scores_each_window_on_its_own_masks(mm5_root, ids, tmp_path, capsys):
    """A window's row holds exactly the masks made while its sensor sent degraded images (found from
    the bag's pixels, not from the windows), used or left out by the quality gate; the clean row
    holds the others."""
    windows = ["rgb:black:0.23:0.45", "depth:zeros:0.5:0.7"]  # edges between frames: 3 images each
    bag, out = tmp_path / "bag", tmp_path / "report"
    flags = ["--data", str(mm5_root), "--limit", str(FRAMES), "--size", "120x160", "--out", str(bag)]
    assert main(["make-bag", *flags, *[a for w in windows for a in ("--degrade", w)]]) == 0
    assert f"degraded {windows[0]}: 3 images" in capsys.readouterr().out
    assert main(["evaluate", "--bag", str(bag), "--out", str(out)]) == 0
    printed, report = capsys.readouterr().out, (out / "report.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    table, frames = metrics["per_window"], metrics["frames"]
    assert list(table) == ["clean", *windows] and len(frames) == FRAMES

    def made_while_blank(modality: str) -> list[dict[str, Any]]:
        """The masks whose moment's image of ``modality`` (the nearest stamp) is all zeros."""
        images = _images(bag, DEFAULT_TOPICS[modality])
        nearest = {f["stamp_ns"]: min(images, key=lambda s: abs(s - f["stamp_ns"])) for f in frames}
        return [f for f in frames if not images[nearest[f["stamp_ns"]]].any()]

    groups = {windows[0]: made_while_blank("rgb"), windows[1]: made_while_blank("depth")}
    clean = [f for f in frames if all(f not in members for members in groups.values())]
    assert [len(members) for members in groups.values()] == [3, 3] and len(clean) == FRAMES - 6
    for name, members in {**groups, "clean": clean}.items():
        assert table[name]["frames"] == len(members)
        assert table[name]["IoU"] == pytest.approx(np.mean([f["scores"]["IoU"] for f in members]), abs=1e-12)
        assert f"| {name} | {len(members)} | " in printed and f"| {name} | {len(members)} | " in report
    assert table[windows[0]]["IoU"] != pytest.approx(table["clean"]["IoU"], abs=1e-3)  # a black camera is felt
    # The gate left the blank images out, and the accounting says so: one frame per mask of each window.
    gated = metrics["accounting"]["degraded_frames"]
    assert gated.get("rgb.underexposed") == 3 and gated.get("depth.blind") == 3, gated
    assert f"left out by the quality gate: {gated}" in printed
    # Without the gate every image is used: the black ones reach the network.
    ungated = tmp_path / "ungated"
    assert main(["evaluate", "--bag", str(bag), "--out", str(ungated), "--no-quality-gate"]) == 0
    metrics = json.loads((ungated / "metrics.json").read_text())
    assert metrics["accounting"]["degraded_frames"] == {}
    assert {f["subset"] for f in metrics["frames"]} == {"rgb+depth+thermal"}


def test_a_bag_without_windows_has_no_window_table(mm5_root, ids, tmp_path):
    bag = tmp_path / "bag"
    make_bag(mm5_root, ids[:4], bag, MakeBagConfig(size=SIZE), progress=False)
    manifest = open_engine_folder(REPO / "engines" / DEFAULT_MODEL)
    evaluation = BagEvaluator(OnnxRuntimeBackend(manifest), manifest.input_size).run(
        bag, GroundTruth.from_topic(bag, DEFAULT_GT_TOPIC), progress=False
    )
    assert evaluation.per_window() == {} and window_table(evaluation) == ""
    assert evaluation.masks == 4 and all(r.windows == () for r in evaluation.records)


def test_a_bag_whose_degrade_metadata_is_not_a_schedule_is_named(tmp_path):
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        writer.annotate(DEGRADE_KEY, '{"windows": [{"degradation": "rgb:sunburn", "start_s": 0, "end_s": 1}]}')
        writer.write(DEFAULT_GT_TOPIC, START_NS, image_message(np.zeros((4, 4), np.uint8), "mono8", START_NS))
    with pytest.raises(BagError, match=rf"{bag}: metadata entry {DEGRADE_KEY} is not a degradation schedule"):
        DegradeSchedule.from_bag(bag)
