"""Rosbag2 tooling on real MM5 frames: make-bag, offline evaluation, accounting, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import py_sod_metrics as sod
import pytest

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.bags.evaluate import BagEvaluator
from binseg_ros.bags.groundtruth import GroundTruth
from binseg_ros.bags.io import (
    DIAGNOSTICS,
    STORAGES,
    TYPESTORE,
    BagWriter,
    bag_topics,
    compressed_message,
    image_message,
    read_messages,
)
from binseg_ros.bags.make import DEFAULT_GT_TOPIC, DEFAULT_TOPICS, START_NS, Dropout, MakeBagConfig, make_bag
from binseg_ros.bags.report import write_report
from binseg_ros.cli import main
from binseg_ros.core.messages import image_view, stamp_ns
from binseg_ros.datasets import camera_frames, load_frame, resize_frame
from binseg_ros.errors import BagError
from binseg_ros.training.split import SPLITS, load_split

SIZE = (120, 160)


@pytest.fixture(scope="module")
def ids() -> list[str]:
    return load_split(SPLITS / "mm5.yaml").held_out_ids()[:30]


def _evaluate(engine, bag: Path, **kwargs):  # type: ignore[no-untyped-def]
    evaluator = BagEvaluator(OnnxRuntimeBackend(engine), engine.input_size, **kwargs)
    return evaluator.run(bag, GroundTruth.from_topic(bag, DEFAULT_GT_TOPIC), progress=False)


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_a_bag_cut_short_by_an_exception_is_removed(tmp_path, storage):
    """No half-written bag passes for a whole one, and its folder does not block the re-run."""
    path = tmp_path / "cut"
    mask = image_message(np.zeros((4, 4), np.uint8), "mono8", START_NS)
    with pytest.raises(RuntimeError, match="camera unplugged"), BagWriter(path, storage) as bag:
        bag.write(DEFAULT_GT_TOPIC, START_NS, mask)
        raise RuntimeError("camera unplugged")
    assert not path.exists()
    with BagWriter(path, storage) as bag:
        bag.write(DEFAULT_GT_TOPIC, START_NS, mask)
    assert bag_topics(path) == {DEFAULT_GT_TOPIC: "sensor_msgs/msg/Image"}


def test_sqlite3_and_mcap_hold_the_same_registered_frames(mm5_root, ids, tmp_path):
    config = MakeBagConfig(size=SIZE, drop_probability=0.1, seed=5)
    bags = {}
    for storage in STORAGES:
        make_bag(
            mm5_root,
            ids[:6],
            tmp_path / storage,
            MakeBagConfig(**{**config.__dict__, "storage": storage}),
            progress=False,
        )
        bags[storage] = [
            (m.topic, m.log_time, stamp_ns(m.msg.header), m.msg.encoding, bytes(m.raw))
            for m in read_messages(tmp_path / storage, [*DEFAULT_TOPICS.values(), DEFAULT_GT_TOPIC])
        ]
    assert bags["sqlite3"] == bags["mcap"]  # byte-identical messages, same order
    assert bag_topics(tmp_path / "mcap") == {
        t: "sensor_msgs/msg/Image" for t in [*DEFAULT_TOPICS.values(), DEFAULT_GT_TOPIC]
    }

    # With the default clocks (every camera at 1 / hold, phases within a frame) the i-th image
    # of every topic is dataset frame i, in the drivers' encodings, and so is its label.
    steady = tmp_path / "steady"
    make_bag(mm5_root, ids[:6], steady, MakeBagConfig(size=SIZE), progress=False)
    expected = [camera_frames(resize_frame(load_frame(mm5_root, i), SIZE)) for i in ids[:6]]
    for modality, topic in DEFAULT_TOPICS.items():
        images = [image_view(m.msg) for m in read_messages(steady, [topic])]
        assert len(images) == len(expected)
        for index, image in enumerate(images):
            assert np.array_equal(image, expected[index][modality]), (topic, index)
    truth = GroundTruth.from_topic(steady, DEFAULT_GT_TOPIC)
    for message in read_messages(steady, [DEFAULT_TOPICS["thermal"]]):
        index = round((stamp_ns(message.msg.header) - START_NS) * 1e-9 * 15)
        label = resize_frame(load_frame(mm5_root, ids[index]), SIZE)["label"] > 0
        assert np.array_equal(truth.lookup(stamp_ns(message.msg.header)), label)


def test_bag_metrics_equal_pysodmetrics_on_the_same_predictions(fast_engine, mm5_root, ids, tmp_path):
    bag = tmp_path / "bag"
    make_bag(mm5_root, ids[:12], bag, MakeBagConfig(size=SIZE, storage="sqlite3"), progress=False)
    evaluation = _evaluate(fast_engine, bag, keep_predictions=True)
    assert evaluation.accounting_balanced and evaluation.masks == 12 and len(evaluation.scored) == 12
    write_report(evaluation, tmp_path / "report")
    truth = GroundTruth.from_topic(bag, DEFAULT_GT_TOPIC)
    s, mae = sod.Smeasure(), sod.MAE()
    f = sod.FmeasureV2({"f": sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3)})
    iou = sod.FmeasureV2({"iou": sod.IOUHandler(with_dynamic=False, with_adaptive=False, with_binary=True)})
    for png in sorted((tmp_path / "report" / "predictions").glob("*.png")):
        prediction = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
        label = truth.lookup(int(png.stem))
        for metric in (s, mae, f):  # the benchmarks' per-frame stretch
            metric.step(prediction, label.astype(np.uint8) * 255)
        iou.step(prediction / 255.0, label, normalize=False)  # the published mask, unstretched
    overall = evaluation.overall()
    assert overall["S"] == pytest.approx(s.get_results()["sm"], abs=1e-12)
    assert overall["MAE"] == pytest.approx(mae.get_results()["mae"], abs=1e-12)
    assert overall["IoU"] == pytest.approx(iou.get_results()["iou"]["binary"], abs=1e-12)
    assert overall["maxF"] == pytest.approx(f.get_results()["f"]["dynamic"].max(), abs=1e-12)
    for name in ("report.md", "metrics.json", "curves.png", "iou_timeline.png", "latency.png", "overlays.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0, name


def test_thermal_dropout_splits_the_robustness_table(fast_engine, mm5_root, ids, tmp_path):
    bag = tmp_path / "bag"
    make_bag(mm5_root, ids, bag, MakeBagConfig(size=SIZE, dropouts=(Dropout("thermal", 0.6, 1.4),)), progress=False)
    evaluation = _evaluate(fast_engine, bag)
    assert evaluation.accounting_balanced
    table = evaluation.per_subset()
    assert set(table) == {"rgb+depth+thermal", "rgb+depth"}
    assert sum(row["frames"] for row in table.values()) == len(evaluation.scored) == evaluation.masks
    for record in evaluation.records:
        name = "+".join(record.subset)
        if 0.6 + 0.04 <= record.time_s < 1.4:  # thermal silent (anchor stamps near 0.6 could pair with 0.59)
            assert name == "rgb+depth", record.time_s
        elif record.time_s < 0.55 or record.time_s > 1.4 + 0.3:  # before, or after re-admission (3 frames)
            assert name == "rgb+depth+thermal", record.time_s
    # Anchors went out without thermal once it could no longer match, long before thermal timed
    # out (modality_timeout 0.5 s): nothing in the window was lost, and nothing waited for the timeout.
    in_window = [r for r in evaluation.records if 0.64 <= r.time_s < 1.4]
    assert len(in_window) >= 11 and max(r.timings["sync_wait"] for r in in_window) < 0.4


def test_bad_bags_and_bad_ground_truth_are_named(fast_engine, mm5_root, ids, tmp_path):
    bag = tmp_path / "bag"
    make_bag(mm5_root, ids[:4], bag, MakeBagConfig(size=SIZE, storage="mcap"), progress=False)
    with pytest.raises(BagError, match=r"no topic /flir/image; it has .*/thermal/image"):
        BagEvaluator(
            OnnxRuntimeBackend(fast_engine), fast_engine.input_size, topics={**DEFAULT_TOPICS, "thermal": "/flir/image"}
        ).run(bag, GroundTruth.from_topic(bag, DEFAULT_GT_TOPIC), progress=False)
    with pytest.raises(BagError, match="no ground-truth topic /nothing/here"):
        GroundTruth.from_topic(bag, "/nothing/here")
    with pytest.raises(BagError, match=r"no ground truth: folder .* holds no usable mask"):
        _evaluate_with(fast_engine, bag, GroundTruth.from_folder(tmp_path))
    with pytest.raises(BagError, match="no such bag"):
        _evaluate_with(fast_engine, tmp_path / "missing", GroundTruth.from_folder(tmp_path))

    wrong = tmp_path / "gt"  # labels at another resolution: counted, never scored against resized masks
    wrong.mkdir()
    for message in read_messages(bag, [DEFAULT_GT_TOPIC]):
        cv2.imwrite(str(wrong / f"{stamp_ns(message.msg.header)}.png"), np.zeros((10, 10), np.uint8))
    evaluation = _evaluate_with(fast_engine, bag, GroundTruth.from_folder(wrong))
    assert evaluation.mask_skips == {"ground_truth_size_mismatch": evaluation.masks} and not evaluation.scored
    assert evaluation.accounting_balanced

    data_file = next(bag.glob("*.mcap"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])  # truncated mid-chunk
    with pytest.raises(BagError, match=str(bag)):
        _evaluate(fast_engine, bag)
    sqlite = tmp_path / "sqlite"
    make_bag(mm5_root, ids[:2], sqlite, MakeBagConfig(size=SIZE, storage="sqlite3"), progress=False)
    database = next(sqlite.glob("*.db3"))
    database.write_bytes(b"not a database" * 100)
    with pytest.raises(BagError, match=str(sqlite)):
        _evaluate(fast_engine, sqlite)


def _evaluate_with(engine, bag: Path, truth: GroundTruth):  # type: ignore[no-untyped-def]
    return BagEvaluator(OnnxRuntimeBackend(engine), engine.input_size).run(bag, truth, progress=False)


def test_cli_make_bag_and_evaluate(fast_engine, mm5_root, tmp_path):
    bag = tmp_path / "cli_bag"
    run = [sys.executable, "-m", "binseg_ros.cli"]
    made = subprocess.run(
        [
            *run,
            "make-bag",
            "--data",
            str(mm5_root),
            "--out",
            str(bag),
            "--limit",
            "8",
            "--size",
            "120x160",
            "--storage",
            "sqlite3",
            "--dropout",
            "depth:0.1:0.3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert "silenced by dropouts: {'depth': 3}" in made.stdout
    out = tmp_path / "report"
    evaluated = subprocess.run(
        [*run, "evaluate", "--bag", str(bag), "--engine-dir", str(fast_engine.root), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "Every message accounted for: **yes**" in (out / "report.md").read_text()
    broken = subprocess.run(
        [*run, "evaluate", "--bag", str(tmp_path), "--engine-dir", str(fast_engine.root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert broken.returncode == 2 and "not a readable rosbag2" in broken.stderr and "Traceback" not in broken.stderr


def test_ground_truth_is_the_nearest_label_within_the_tolerance(tmp_path):
    """A mask anchored on another camera's stamp (RGB silent) still finds the label of its moment."""
    folder = tmp_path / "gt"
    folder.mkdir()
    for stamp, value in ((1_000_000_000, 255), (1_066_666_667, 0)):
        cv2.imwrite(str(folder / f"{stamp}.png"), np.full((4, 4), value, np.uint8))
    exact = GroundTruth.from_folder(folder)
    assert exact.lookup(1_000_000_000).all() and exact.lookup(1_010_000_000) is None
    near = GroundTruth.from_folder(folder, tolerance_ns=20_000_000)
    assert near.lookup(1_010_000_000).all()  # 10 ms from the first label
    assert not near.lookup(1_050_000_000).any()  # 16.7 ms from the second, 50 ms from the first
    assert near.lookup(1_100_000_000) is None  # 33 ms from the nearest: beyond the tolerance
    assert near.lookup(990_000_000).all()


def _copy(bag: Path, out: Path, label: Callable[[Any], Any] = lambda msg: msg, extra: Any = None) -> Path:
    """``bag`` rewritten to ``out``, each ground-truth message as ``label`` turns it, plus ``extra``
    on /diagnostics at the first message's time."""
    with BagWriter(out) as writer:
        for message in read_messages(bag, [*DEFAULT_TOPICS.values(), DEFAULT_GT_TOPIC]):
            if extra is not None:
                writer.write("/diagnostics", message.log_time, extra)
                extra = None
            if message.topic == DEFAULT_GT_TOPIC:
                writer.write(message.topic, message.log_time, label(message.msg))
            else:
                writer.write_raw(message.topic, message.msg.__msgtype__, message.log_time, message.raw)
    return out


@pytest.fixture(scope="module")
def small_bag(mm5_root, ids, tmp_path_factory) -> Path:
    bag = tmp_path_factory.mktemp("small") / "bag"
    make_bag(mm5_root, ids[:4], bag, MakeBagConfig(size=SIZE), progress=False)
    return bag


def _same_labels(truth: GroundTruth, reference: GroundTruth, bag: Path) -> None:
    stamps = [stamp_ns(m.msg.header) for m in read_messages(bag, [DEFAULT_GT_TOPIC])]
    assert any(reference.lookup(s).any() for s in stamps)  # the frames have foreground to lose
    for stamp in stamps:
        assert np.array_equal(truth.lookup(stamp), reference.lookup(stamp)), stamp


def test_labels_stored_as_0_1_read_as_the_same_masks_as_0_255(small_bag, tmp_path):
    """A label format of 0 / 1 reads as its 0 / 255 twin, from a topic and from PNG files."""
    ones = _copy(
        small_bag, tmp_path / "ones", lambda msg: image_message(image_view(msg) // 255, "mono8", stamp_ns(msg.header))
    )
    folder = tmp_path / "pngs"
    folder.mkdir()
    for message in read_messages(small_bag, [DEFAULT_GT_TOPIC]):
        cv2.imwrite(str(folder / f"{stamp_ns(message.msg.header)}.png"), image_view(message.msg) // 255)
    reference = GroundTruth.from_topic(small_bag, DEFAULT_GT_TOPIC)
    _same_labels(GroundTruth.from_topic(ones, DEFAULT_GT_TOPIC), reference, small_bag)
    _same_labels(GroundTruth.from_folder(folder), reference, small_bag)


def test_a_compressed_label_topic_reads_as_the_raw_one(small_bag, tmp_path):
    packed = _copy(
        small_bag,
        tmp_path / "packed",
        lambda msg: compressed_message(image_view(msg), "mono8", stamp_ns(msg.header), "compressed", codec="png"),
    )
    assert bag_topics(packed)[DEFAULT_GT_TOPIC] == "sensor_msgs/msg/CompressedImage"
    reference = GroundTruth.from_topic(small_bag, DEFAULT_GT_TOPIC)
    _same_labels(GroundTruth.from_topic(packed, DEFAULT_GT_TOPIC), reference, small_bag)


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if ": error: " in line]


def test_topics_that_hold_no_images_are_named_with_their_type(fast_engine, small_bag, tmp_path, capsys):
    header = next(iter(read_messages(small_bag, [DEFAULT_GT_TOPIC]))).msg.header
    bag = _copy(small_bag, tmp_path / "bag", extra=TYPESTORE.types[DIAGNOSTICS](header=header, status=[]))
    expected = (
        f"{bag}: topic /diagnostics is diagnostic_msgs/msg/DiagnosticArray; "
        "expected sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage"
    )
    for flags in (["--gt-topic", "/diagnostics"], ["--topics", "rgb=/diagnostics"]):
        argv = ["evaluate", "--bag", str(bag), "--engine-dir", str(fast_engine.root), "--out", str(tmp_path / "r")]
        assert main([*argv, *flags]) == 2, flags
        assert _error_lines(capsys.readouterr().err) == [f"binseg evaluate: error: {expected}"], flags


def test_a_robot_without_a_sensor_is_evaluated_on_the_modalities_it_has(fast_engine, mm5_root, tmp_path, capsys):
    bag = tmp_path / "bag"
    made = ["make-bag", "--data", str(mm5_root), "--out", str(bag), "--limit", "12", "--size", "120x160"]
    assert main([*made, "--dropout", "thermal:0:10"]) == 0  # thermal never publishes: no topic
    assert DEFAULT_TOPICS["thermal"] not in bag_topics(bag)
    argv = ["evaluate", "--bag", str(bag), "--engine-dir", str(fast_engine.root)]
    for modalities in ("rgb+depth", "rgb"):
        out = tmp_path / modalities
        assert main([*argv, "--out", str(out), "--modalities", modalities]) == 0, capsys.readouterr().err
        metrics = json.loads((out / "metrics.json").read_text())
        assert set(metrics["accounting"]["frames_in"]) == set(modalities.split("+"))
        assert list(metrics["per_subset"]) == [modalities] and metrics["accounting"]["scored"] > 0
    capsys.readouterr()
    for modalities in ([], ["--modalities", "depth+thermal"]):  # thermal chosen: its topic is still required
        assert main([*argv, "--out", str(tmp_path / "r"), *modalities]) == 2
        (line,) = _error_lines(capsys.readouterr().err)
        assert f"has no topic {DEFAULT_TOPICS['thermal']};" in line


def test_nothing_scored_reports_why_and_exits_2(small_bag, fast_engine, ids, mm5_root, tmp_path, capsys):
    """Labels at another resolution: every mask is counted as not scored, the report is still
    written, and the run ends in one line naming the reason."""
    wrong = tmp_path / "gt"
    wrong.mkdir()
    for message in read_messages(small_bag, [DEFAULT_GT_TOPIC]):
        cv2.imwrite(str(wrong / f"{stamp_ns(message.msg.header)}.png"), np.full((10, 10), 255, np.uint8))
    out = tmp_path / "report"
    argv = ["evaluate", "--engine-dir", str(fast_engine.root), "--out", str(out)]
    assert main([*argv, "--bag", str(small_bag), "--gt-dir", str(wrong)]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    accounting = json.loads((out / "metrics.json").read_text())["accounting"]
    masks = accounting["masks"]
    assert masks > 0 and accounting["scored"] == 0 and accounting["mask_skips"] == {"ground_truth_size_mismatch": masks}
    assert line.startswith("binseg evaluate: error: ") and "ground_truth_size_mismatch" in line
    assert f"Masks {masks}, scored 0" in (out / "report.md").read_text() and str(out / "report.md") in line

    # A bag over before the absent thermal camera stops being waited for: no mask at all.
    short = tmp_path / "short"
    make_bag(mm5_root, ids[:4], short, MakeBagConfig(size=SIZE, dropouts=(Dropout("thermal", 0, 10),)), progress=False)
    assert main([*argv, "--bag", str(short), "--modalities", "rgb+depth"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    accounting = json.loads((out / "metrics.json").read_text())["accounting"]
    assert accounting["masks"] == 0 and sum(accounting["drops"].values()) == sum(accounting["frames_in"].values())
    assert "no mask was made" in line and "end_of_input" in line
