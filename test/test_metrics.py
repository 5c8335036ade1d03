"""Metrics plumbing: pysodmetrics wrapped correctly, checked against independent numpy sums."""

from __future__ import annotations

import numpy as np
import pytest

from binseg_ros.backends.torch import TorchBackend
from binseg_ros.metrics import METRICS, SegmentationMetrics, frame_metrics
from binseg_ros.training.evaluate import format_table, robustness_table

from conftest import frame_inputs


def test_perfect_and_inverted_predictions():
    truth = np.zeros((48, 64), bool)
    truth[10:20, 5:40] = True
    perfect = frame_metrics(truth.astype(np.float64), truth)
    assert perfect["IoU"] == perfect["Dice"] == perfect["maxF"] == pytest.approx(1.0)
    assert perfect["MAE"] == perfect["BER"] == pytest.approx(0.0)
    assert perfect["S"] == pytest.approx(1.0, abs=1e-6)
    inverted = frame_metrics((~truth).astype(np.float64), truth)
    assert inverted["IoU"] == 0.0 and inverted["MAE"] == pytest.approx(1.0)


def test_thresholded_scores_match_numpy_per_frame_averages():
    rng = np.random.default_rng(4)
    metrics = SegmentationMetrics()
    ious, dices, maes = [], [], []
    for _ in range(5):
        truth = np.zeros((60, 80), bool)
        y, x = rng.integers(0, 40, 2)
        truth[y : y + 15, x : x + 25] = True
        probability = np.clip(truth * 0.7 + rng.normal(0, 0.25, truth.shape), 0, 1)
        metrics.add(probability, truth)
        quantised = np.rint(probability * 255) / 255  # what the uint8 interface sees
        predicted = quantised > 0.5
        inter, union = (predicted & truth).sum(), (predicted | truth).sum()
        ious.append(inter / union)
        dices.append(2 * inter / (predicted.sum() + truth.sum()))
        maes.append(np.abs(quantised - truth).mean())
    result = metrics.result()
    assert set(result) == set(METRICS) and metrics.frames == 5
    assert result["IoU"] == pytest.approx(np.mean(ious), abs=1e-3)
    assert result["Dice"] == pytest.approx(np.mean(dices), abs=1e-3)
    assert result["MAE"] == pytest.approx(np.mean(maes), abs=1e-6)
    assert result["maxF"] >= result["meanF"] and result["maxE"] >= result["meanE"]


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        SegmentationMetrics().add(np.zeros((4, 4)), np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="no frames"):
        SegmentationMetrics().result()


def test_robustness_table_covers_every_subset(calibrated_net, real_frames):
    backend = TorchBackend(calibrated_net, (96, 128))
    frames = [{**frame_inputs(f), "label": f["label"]} for f in real_frames[:2]]
    table = robustness_table(backend, (96, 128), frames, progress=False)
    assert list(table)[:7] == ["rgb+depth+thermal", "rgb+depth", "rgb+thermal", "depth+thermal", "rgb", "depth",
                               "thermal"]
    subsets = [table[k] for k in list(table)[:7]]
    assert table["worst"]["IoU"] == min(r["IoU"] for r in subsets)
    assert table["worst"]["MAE"] == max(r["MAE"] for r in subsets)
    assert table["average"]["S"] == pytest.approx(np.mean([r["S"] for r in subsets]))
    text = format_table({"balanced": table, "baseline": table})
    assert text.count("\n") == len(table) + 1 and "IoU (baseline)" in text
