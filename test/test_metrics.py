"""Metrics plumbing: pysodmetrics wrapped correctly, checked against independent numpy sums."""

from __future__ import annotations

import numpy as np
import py_sod_metrics as sod
import pytest
from conftest import frame_inputs

from binseg_ros.backends.torch import TorchBackend
from binseg_ros.metrics import METRICS, SegmentationMetrics, boundary_f_measure, mean_curves, score_frame, summarize
from binseg_ros.training.evaluate import format_table, robustness_table


def test_perfect_and_inverted_predictions():
    truth = np.zeros((48, 64), bool)
    truth[10:20, 5:40] = True
    perfect = summarize([score_frame(truth.astype(np.float64), truth)])
    assert perfect["IoU"] == perfect["Dice"] == perfect["maxF"] == pytest.approx(1.0)
    assert perfect["MAE"] == perfect["BER"] == pytest.approx(0.0)
    assert perfect["S"] == pytest.approx(1.0, abs=1e-6)
    inverted = summarize([score_frame((~truth).astype(np.float64), truth)])
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


def _pysodmetrics_directly(pairs) -> dict[str, float]:
    """The reference: pysodmetrics' own accumulators stepped over every frame, the benchmarks'
    stretch for the curves and S, E, wF, MAE, none for the thresholded scores."""
    s, e, wf, mae = sod.Smeasure(), sod.Emeasure(), sod.WeightedFmeasure(), sod.MAE()
    curves = sod.FmeasureV2({"f": sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3)})
    binary = sod.FmeasureV2(
        {
            "iou": sod.IOUHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            "dice": sod.DICEHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            "ber": sod.BERHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
        }
    )
    for probability, truth in pairs:
        pred, gt = np.rint(probability * 255).astype(np.uint8), truth.astype(np.uint8) * 255
        for metric in (s, e, wf, mae, curves):
            metric.step(pred, gt)
        binary.step(probability.astype(np.float64), truth, normalize=False)
    r = curves.get_results() | binary.get_results()
    em = e.get_results()["em"]["curve"]
    return {
        "S": s.get_results()["sm"],
        "maxF": r["f"]["dynamic"].max(),
        "meanF": r["f"]["dynamic"].mean(),
        "maxE": em.max(),
        "meanE": em.mean(),
        "wF": wf.get_results()["wfm"],
        "MAE": mae.get_results()["mae"],
        "IoU": r["iou"]["binary"],
        "Dice": r["dice"]["binary"],
        "BER": r["ber"]["binary"],
    }


def test_frame_scores_combine_to_exactly_what_pysodmetrics_reports():
    rng = np.random.default_rng(7)
    pairs = []
    for _ in range(6):
        truth = np.zeros((48, 64), bool)
        y, x = rng.integers(0, 30, 2)
        truth[y : y + 12, x : x + 20] = True
        pairs.append((np.clip(truth * 0.6 + rng.normal(0.2, 0.2, truth.shape), 0, 1), truth))
    scores = [score_frame(p, t) for p, t in pairs]
    for subset in (scores, scores[::2], scores[4:]):  # any subset of frames, e.g. one modality subset
        chosen = [pairs[scores.index(sc)] for sc in subset]
        expected = _pysodmetrics_directly(chosen)
        got = summarize(subset)
        assert set(METRICS) == set(expected) | {"BF"}  # BF is ours: pysodmetrics has no boundary F
        for name in expected:
            assert got[name] == pytest.approx(float(expected[name]), abs=1e-9), name
        assert got["BF"] == pytest.approx(np.mean([sc.scalars["BF"] for sc in subset]))
    curves = mean_curves(scores)
    assert curves["precision"].shape == curves["recall"].shape == (256,)


def test_thresholded_scores_are_those_of_the_published_mask_not_of_a_stretched_map():
    """A frame whose probability peaks at 0.3 publishes an empty mask; stretched to 0..1 per
    frame, as the salient-object benchmarks do, the same map would have scored a perfect IoU."""
    truth = np.zeros((40, 60), bool)
    truth[:20] = True
    unsure = np.where(truth, 0.3, 0.05)
    scores = score_frame(unsure, truth).scalars
    assert scores["IoU"] == scores["Dice"] == scores["BF"] == 0.0
    assert scores["BER"] == pytest.approx(0.5)  # every foreground pixel missed, no false positive
    assert scores["S"] == pytest.approx(1.0, abs=1e-6)  # the benchmarks' S still sees the ranking


def test_a_frame_with_nothing_to_find_scores_the_false_positives():
    nothing = np.zeros((40, 60), bool)
    empty = score_frame(np.full(nothing.shape, 0.1), nothing).scalars
    assert empty["IoU"] == empty["Dice"] == empty["BF"] == 1.0 and empty["BER"] == 0.0
    spurious = np.full(nothing.shape, 0.1)
    spurious[:6, :10] = 0.9  # 60 of 2400 pixels
    scores = score_frame(spurious, nothing).scalars
    assert scores["IoU"] == scores["Dice"] == scores["BF"] == 0.0
    assert scores["BER"] == pytest.approx(0.5 * 60 / 2400)


def test_nan_in_a_probability_is_no_foreground_as_in_the_published_mask():
    truth = np.zeros((40, 60), bool)
    truth[:20] = True
    probability = np.where(truth, 0.9, 0.1)
    probability[:10] = np.nan  # half the foreground
    scores = score_frame(probability, truth).scalars
    assert scores["IoU"] == pytest.approx(0.5) and scores["Dice"] == pytest.approx(2 / 3)


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        SegmentationMetrics().add(np.zeros((4, 4)), np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="no frames"):
        SegmentationMetrics().result()


def test_robustness_table_covers_every_subset(calibrated_net, real_frames):
    backend = TorchBackend(calibrated_net, (96, 128))
    frames = [{**frame_inputs(f), "label": f["label"]} for f in real_frames[:2]]
    table = robustness_table(backend, (96, 128), frames, progress=False)
    assert list(table)[:7] == [
        "rgb+depth+thermal",
        "rgb+depth",
        "rgb+thermal",
        "depth+thermal",
        "rgb",
        "depth",
        "thermal",
    ]
    subsets = [table[k] for k in list(table)[:7]]
    assert table["worst"]["IoU"] == min(r["IoU"] for r in subsets)
    assert table["worst"]["MAE"] == max(r["MAE"] for r in subsets)
    assert table["average"]["S"] == pytest.approx(np.mean([r["S"] for r in subsets]))
    single = format_table({"balanced": table}).splitlines()
    assert len(single) == len(table) + 2 and single[0] == "| subset | " + " | ".join(METRICS) + " |"
    assert single[2].startswith(f"| rgb+depth+thermal | {table['rgb+depth+thermal']['S']:.3f} |")
    both = format_table({"balanced": table, "baseline": table})
    assert both.splitlines()[0].startswith("| subset | IoU balanced | IoU baseline | S balanced |")
    assert "**baseline**" in both and both.count(single[2]) == 2


def test_curves_run_from_the_highest_threshold_down():
    """The report's threshold axis relies on it: index i of every curve is threshold 255 - i."""
    ramp = np.arange(256).reshape(16, 16)
    truth = ramp == 200
    curves = score_frame(ramp / 255, truth).curves
    assert curves["recall"][255 - 200] == 1.0 and curves["recall"][255 - 201] == 0.0
    assert curves["precision"][255 - 200] == pytest.approx(1 / 56)  # pixels 200..255 are predicted


def test_boundary_f_measure_counts_edges_within_the_tolerance():
    """A 200x300 image: diagonal 360.6 px, so the default tolerance (0.008) is 3 px."""
    truth = np.zeros((200, 300), bool)
    truth[50:150, 80:220] = True
    shifted = lambda dx: np.roll(truth, dx, axis=1)  # noqa: E731
    assert boundary_f_measure(truth, truth) == 1.0
    assert boundary_f_measure(shifted(3), truth) == 1.0  # every edge pixel within 3 px of the other's
    # 10 px off: the vertical edges (100 px each) miss, the horizontal ones (140 px) mostly match.
    far = boundary_f_measure(shifted(10), truth)
    assert 0.5 < far < 0.75
    assert boundary_f_measure(shifted(10), truth, tolerance=0.03) == 1.0  # 11 px tolerance
    empty = np.zeros_like(truth)
    assert boundary_f_measure(empty, empty) == 1.0 and boundary_f_measure(empty, truth) == 0.0
    # IoU barely notices a thin wrong band; BF does.
    jagged = truth.copy()
    jagged[50:150:4, 60:80] = True
    assert boundary_f_measure(jagged, truth) < 0.9
