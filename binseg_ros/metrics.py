"""Segmentation quality with ``pysodmetrics``: the numbers every report in this project uses.

S-measure, max/mean F-measure (β² = 0.3), max/mean E-measure, weighted F, MAE, and at the
0.5 threshold IoU, Dice, BER and the boundary F-measure (BF), each averaged over frames. Small foregrounds (MM5's median
is 1.9 % of the image) make pixel accuracy meaningless; these are not fooled by it.

Two conventions meet here:

- S, F, E, wF and MAE follow the salient-object benchmarks (pysodmetrics' default): each
  frame's map is stretched to its own min..max first, so they compare with published numbers.
- IoU, Dice, BER and BF score the mask the node publishes: the probability itself above 0.5,
  unstretched (a frame whose probability peaks at 0.4 publishes an empty mask, and scores as one).
  A frame with no foreground in its label, common on a robot, scores IoU and Dice 1 when the
  mask is empty too and 0 when it is not, and BER half its false-positive rate (no foreground
  to miss); pysodmetrics would give 0, 0 and 0.5 whatever the mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import py_sod_metrics as sod

METRICS = ("S", "maxF", "meanF", "maxE", "meanE", "wF", "MAE", "IoU", "Dice", "BER", "BF")
BOUNDARY_TOLERANCE = 0.008
"""Boundary F tolerance as a fraction of the image diagonal (DAVIS's default)."""
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

    scalars: dict[str, float]  # S, wF, MAE, IoU, Dice, BER, BF
    curves: dict[str, np.ndarray]  # CURVES → [256]


def score_frame(probability: np.ndarray, truth: np.ndarray) -> FrameScore:
    """Score ``probability`` in [0, 1] against a boolean ``truth`` of the same shape; NaN scores as
    0, no foreground, as the node's mask has it."""
    if probability.shape != truth.shape:
        raise ValueError(f"prediction {probability.shape} and ground truth {truth.shape} differ in shape")
    probability = np.nan_to_num(probability, nan=0.0)  # its dtype kept: the uint8 map rounds as prediction PNGs do
    pred = to_uint8(probability)
    gt = truth.astype(np.uint8) * 255
    s, e, wf, mae = sod.Smeasure(), sod.Emeasure(), sod.WeightedFmeasure(), sod.MAE()
    curves_of = sod.FmeasureV2(
        {
            "f": sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3),
            "precision": sod.PrecisionHandler(with_dynamic=True, with_adaptive=False),
            "recall": sod.RecallHandler(with_dynamic=True, with_adaptive=False),
        }
    )
    for metric in (s, e, wf, mae, curves_of):
        metric.step(pred, gt)  # the benchmarks' per-frame stretch
    results = curves_of.get_results()
    scalars = {
        "S": float(s.get_results()["sm"]),
        "wF": float(wf.get_results()["wfm"]),
        "MAE": float(mae.get_results()["mae"]),
        **_mask_scores(probability.astype(np.float64), truth),
    }
    curves = {
        "F": np.asarray(results["f"]["dynamic"], np.float64),
        "E": np.asarray(e.get_results()["em"]["curve"], np.float64),
        "precision": np.asarray(results["precision"]["dynamic"], np.float64),
        "recall": np.asarray(results["recall"]["dynamic"], np.float64),
    }
    return FrameScore(scalars, curves)


def _mask_scores(probability: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """IoU, Dice, BER and BF of the published mask (``probability > 0.5``, not stretched)."""
    truth = truth.astype(bool)
    mask = probability > 0.5
    boundary = boundary_f_measure(mask, truth)
    if not truth.any():  # nothing to find: only false positives count
        agree = float(not mask.any())
        return {"IoU": agree, "Dice": agree, "BER": 0.5 * float(mask.mean()), "BF": boundary}
    binary = sod.FmeasureV2(
        {
            "iou": sod.IOUHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            "dice": sod.DICEHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            "ber": sod.BERHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
        }
    )
    binary.step(probability, truth, normalize=False)
    results = binary.get_results()
    return {
        "IoU": float(results["iou"]["binary"]),
        "Dice": float(results["dice"]["binary"]),
        "BER": float(results["ber"]["binary"]),
        "BF": boundary,
    }


def _boundary(mask: np.ndarray) -> np.ndarray:
    """The mask's one-pixel-wide inner boundary: foreground pixels with a background 4-neighbour."""
    fg = mask.astype(np.uint8)
    return (fg - cv2.erode(fg, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)).astype(bool)


def boundary_f_measure(predicted: np.ndarray, truth: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """DAVIS boundary F-measure of two boolean masks: boundary precision and recall, a boundary
    pixel counting as matched within ``tolerance`` × the image diagonal of the other boundary.

    It scores what IoU hides on small objects: a mask whose area is right but whose edges are
    off by a few pixels, e.g. after registering a camera with a slightly wrong calibration.
    Two empty masks agree (1.0); one empty mask against a non-empty one scores 0.
    """
    radius = max(1, int(np.ceil(tolerance * np.hypot(*truth.shape[:2]))))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    pred_edge, true_edge = _boundary(predicted), _boundary(truth)
    if not pred_edge.any() and not true_edge.any():
        return 1.0
    if not pred_edge.any() or not true_edge.any():
        return 0.0
    near_true = cv2.dilate(true_edge.astype(np.uint8), disk).astype(bool)
    near_pred = cv2.dilate(pred_edge.astype(np.uint8), disk).astype(bool)
    precision = float((pred_edge & near_true).sum() / pred_edge.sum())
    recall = float((true_edge & near_pred).sum() / true_edge.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


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
        "BF": scalar["BF"],
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
