"""Segmentation quality with ``pysodmetrics``: the numbers every report in this project uses.

S-measure, max/mean F-measure (β² = 0.3), max/mean E-measure, weighted F, MAE, and at the
0.5 threshold IoU, Dice and BER, each averaged over frames. Small foregrounds (MM5's median
is 1.9 % of the image) make pixel accuracy meaningless; these are not fooled by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import py_sod_metrics as sod

METRICS = ("S", "maxF", "meanF", "maxE", "meanE", "wF", "MAE", "IoU", "Dice", "BER")
LOWER_IS_BETTER = frozenset({"MAE", "BER"})


def to_uint8(probability: np.ndarray) -> np.ndarray:
    """Probability → the 0..255 image pysodmetrics scores (and prediction PNGs store)."""
    return np.clip(np.rint(probability * 255.0), 0, 255).astype(np.uint8)


CURVES = ("F", "E", "precision", "recall")  # per threshold, index i = threshold 255 - i


@dataclass(frozen=True)
class FrameScore:
    """One frame's numbers: the per-frame scalars and the per-threshold curves.

    Every dataset-level number pysodmetrics reports is a mean over frames (of a scalar or
    of a curve, sample-based), so frame scores combine exactly: :func:`summarize` of the
    scores of any frame subset equals pysodmetrics run on those frames. That lets one pass
    over a bag give per-frame, per-subset and overall numbers.
    """

    scalars: dict[str, float]  # S, wF, MAE, IoU, Dice, BER
    curves: dict[str, np.ndarray]  # CURVES → [256]


def score_frame(probability: np.ndarray, truth: np.ndarray) -> FrameScore:
    """Score ``probability`` in [0, 1] against a boolean ``truth`` of the same shape."""
    if probability.shape != truth.shape:
        raise ValueError(f"prediction {probability.shape} and ground truth {truth.shape} differ in shape")
    pred = to_uint8(probability)
    gt = truth.astype(np.uint8) * 255
    s, e, wf, mae = sod.Smeasure(), sod.Emeasure(), sod.WeightedFmeasure(), sod.MAE()
    binary = sod.FmeasureV2(
        {
            "f": sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3),
            "precision": sod.PrecisionHandler(with_dynamic=True, with_adaptive=False),
            "recall": sod.RecallHandler(with_dynamic=True, with_adaptive=False),
            "iou": sod.IOUHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            "dice": sod.DICEHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            "ber": sod.BERHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
        }
    )
    for metric in (s, e, wf, mae, binary):
        metric.step(pred, gt)
    results = binary.get_results()
    scalars = {
        "S": float(s.get_results()["sm"]),
        "wF": float(wf.get_results()["wfm"]),
        "MAE": float(mae.get_results()["mae"]),
        "IoU": float(results["iou"]["binary"]),
        "Dice": float(results["dice"]["binary"]),
        "BER": float(results["ber"]["binary"]),
    }
    curves = {
        "F": np.asarray(results["f"]["dynamic"], np.float64),
        "E": np.asarray(e.get_results()["em"]["curve"], np.float64),
        "precision": np.asarray(results["precision"]["dynamic"], np.float64),
        "recall": np.asarray(results["recall"]["dynamic"], np.float64),
    }
    return FrameScore(scalars, curves)


def mean_curves(scores: Sequence[FrameScore]) -> dict[str, np.ndarray]:
    """Dataset-level curves (PR, F and E per threshold): the frame curves averaged."""
    if not scores:
        raise ValueError("no frames were scored")
    return {name: np.mean([sc.curves[name] for sc in scores], axis=0) for name in CURVES}


def summarize(scores: Sequence[FrameScore]) -> dict[str, float]:
    """The dataset-level :data:`METRICS` of ``scores``, as pysodmetrics computes them."""
    curves = mean_curves(scores)
    scalar = {name: float(np.mean([sc.scalars[name] for sc in scores])) for name in scores[0].scalars}
    return {
        "S": scalar["S"],
        "maxF": float(np.max(curves["F"])),
        "meanF": float(np.mean(curves["F"])),
        "maxE": float(np.max(curves["E"])),
        "meanE": float(np.mean(curves["E"])),
        "wF": scalar["wF"],
        "MAE": scalar["MAE"],
        "IoU": scalar["IoU"],
        "Dice": scalar["Dice"],
        "BER": scalar["BER"],
    }


class SegmentationMetrics:
    """Accumulates frames; :meth:`result` gives the dataset-level numbers."""

    def __init__(self) -> None:
        self.scores: list[FrameScore] = []

    @property
    def frames(self) -> int:
        return len(self.scores)

    def add(self, probability: np.ndarray, truth: np.ndarray) -> FrameScore:
        """One frame: ``probability`` in [0, 1] and a boolean ``truth`` of the same shape."""
        score = score_frame(probability, truth)
        self.scores.append(score)
        return score

    def result(self) -> dict[str, float]:
        if not self.scores:
            raise ValueError("no frames were added")
        return summarize(self.scores)
