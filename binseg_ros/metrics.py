"""Segmentation quality with ``pysodmetrics``: the numbers every report in this project uses.

S-measure, max/mean F-measure (β² = 0.3), max/mean E-measure, weighted F, MAE, and at the
0.5 threshold IoU, Dice and BER, each averaged over frames. Small foregrounds (MM5's median
is 1.9 % of the image) make pixel accuracy meaningless; these are not fooled by it.
"""

from __future__ import annotations

import numpy as np
import py_sod_metrics as sod

METRICS = ("S", "maxF", "meanF", "maxE", "meanE", "wF", "MAE", "IoU", "Dice", "BER")
LOWER_IS_BETTER = frozenset({"MAE", "BER"})


def _to_uint8(probability: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(probability * 255.0), 0, 255).astype(np.uint8)


class SegmentationMetrics:
    """Accumulates frames; :meth:`result` gives the dataset-level numbers."""

    def __init__(self) -> None:
        self._s = sod.Smeasure()
        self._e = sod.Emeasure()
        self._wf = sod.WeightedFmeasure()
        self._mae = sod.MAE()
        self._binary = sod.FmeasureV2(
            {
                "f": sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3),
                "iou": sod.IOUHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
                "dice": sod.DICEHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
                "ber": sod.BERHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            }
        )
        self.frames = 0

    def add(self, probability: np.ndarray, truth: np.ndarray) -> None:
        """One frame: ``probability`` in [0, 1] and a boolean ``truth`` of the same shape."""
        if probability.shape != truth.shape:
            raise ValueError(f"prediction {probability.shape} and ground truth {truth.shape} differ in shape")
        pred = _to_uint8(probability)
        gt = truth.astype(np.uint8) * 255
        for metric in (self._s, self._e, self._wf, self._mae, self._binary):
            metric.step(pred, gt)
        self.frames += 1

    def result(self) -> dict[str, float]:
        if not self.frames:
            raise ValueError("no frames were added")
        binary = self._binary.get_results()
        f = binary["f"]["dynamic"]
        e = self._e.get_results()["em"]["curve"]
        return {
            "S": float(self._s.get_results()["sm"]),
            "maxF": float(np.max(f)),
            "meanF": float(np.mean(f)),
            "maxE": float(np.max(e)),
            "meanE": float(np.mean(e)),
            "wF": float(self._wf.get_results()["wfm"]),
            "MAE": float(self._mae.get_results()["mae"]),
            "IoU": float(binary["iou"]["binary"]),
            "Dice": float(binary["dice"]["binary"]),
            "BER": float(binary["ber"]["binary"]),
        }


def frame_metrics(probability: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The same numbers for a single frame (per-frame plots and worst-frame searches)."""
    metrics = SegmentationMetrics()
    metrics.add(probability, truth)
    return metrics.result()
