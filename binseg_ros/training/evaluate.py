"""The robustness tables: every modality subset, and every sensor degradation, same weights,
same held-out frames.

Predictions go through the same :class:`~binseg_ros.core.segmenter.Segmenter` the node uses
(resize in, backend, bilinear resize out to the label's resolution), so a table computed
here describes what the node publishes. The degradation table runs the full-modal engine on
frames with one modality degraded (:mod:`binseg_ros.degrade` at its fixed strengths), ungated:
what the network itself makes of a degraded sensor, whatever the quality gate would do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from binseg_ros.core.backend import Backend
from binseg_ros.core.frame import registered_set
from binseg_ros.core.segmenter import Segmenter
from binseg_ros.datasets import LabelMap
from binseg_ros.degrade import all_degradations, apply
from binseg_ros.metrics import LOWER_IS_BETTER, METRICS, SegmentationMetrics
from binseg_ros.modalities import MODALITIES, Subset, all_subsets, subset_name

Table = dict[str, dict[str, float]]


def robustness_table(
    backend: Backend,
    input_size: tuple[int, int],
    frames: Sequence[dict[str, np.ndarray]],
    labels: LabelMap = LabelMap(),
    subsets: Sequence[Subset] | None = None,
    progress: bool = True,
) -> Table:
    """Metrics per subset; adds ``average`` (mean over subsets) and ``worst`` rows."""
    segmenter = Segmenter(backend, input_size)
    table: Table = {}
    chosen = list(subsets) if subsets is not None else all_subsets()
    for subset in tqdm(chosen, desc="subsets", unit="subset", disable=not progress):
        metrics = SegmentationMetrics()
        for frame in frames:
            result = segmenter(registered_set({m: frame[m] for m in subset}))
            metrics.add(result.probability, labels.binary(frame["label"]) > 0)
        table[subset_name(subset)] = metrics.result()
    rows = list(table.values())
    table["average"] = {k: float(np.mean([r[k] for r in rows])) for k in METRICS}
    table["worst"] = {k: (max if k in LOWER_IS_BETTER else min)(r[k] for r in rows) for k in METRICS}
    return table


def degradation_table(
    backend: Backend,
    input_size: tuple[int, int],
    frames: Sequence[dict[str, np.ndarray]],
    labels: LabelMap = LabelMap(),
    progress: bool = True,
) -> Table:
    """Metrics of the full-modal engine per degradation (``clean`` first); ``frozen`` repeats
    the previous held-out frame's image, and random kinds are seeded per frame."""
    segmenter = Segmenter(backend, input_size)
    table: Table = {}
    cases = [None, *all_degradations()]
    for degradation in tqdm(cases, desc="degradations", unit="case", disable=not progress):
        metrics = SegmentationMetrics()
        for index, frame in enumerate(frames):
            inputs = {m: frame[m] for m in MODALITIES}
            if degradation is not None:
                stale = frames[index - 1][degradation.modality]
                rng = np.random.default_rng(index)
                inputs[degradation.modality] = apply(degradation, frame[degradation.modality], rng, stale)
            result = segmenter(registered_set(inputs))
            metrics.add(result.probability, labels.binary(frame["label"]) > 0)
        table[str(degradation or "clean")] = metrics.result()
    return table


SIDE_BY_SIDE = ("IoU", "S", "maxF", "MAE")


def _rows(table: Table, columns: Sequence[tuple[str, str]], tables: dict[str, Table]) -> list[str]:
    return [f"| {key} | " + " | ".join(f"{tables[n][key][m]:.3f}" for n, m in columns) + " |" for key in table]


def format_side_by_side(tables: dict[str, Table], first_column: str, metrics: Sequence[str]) -> str:
    """Markdown: one row per key of the tables, ``metrics`` of every named table side by side."""
    first = next(iter(tables.values()))
    columns = [(name, metric) for metric in metrics for name in tables]
    header = f"| {first_column} | " + " | ".join(f"{metric} {name}" for name, metric in columns) + " |"
    return "\n".join([header, "|---|" + "---:|" * len(columns), *_rows(first, columns, tables)])


def format_table(tables: dict[str, Table]) -> str:
    """Markdown: each named table (e.g. balanced, baseline) in full, one row per subset; with
    more than one, first a side-by-side of the headline metrics, which is what a reader compares."""
    sections = []
    first = next(iter(tables.values()))
    if len(tables) > 1:
        sections.append(format_side_by_side(tables, "subset", SIDE_BY_SIDE))
    for name in tables:
        columns = [(name, metric) for metric in METRICS]
        header = "| subset | " + " | ".join(METRICS) + " |"
        title = f"**{name}**\n\n" if len(tables) > 1 else ""
        sections.append(title + "\n".join([header, "|---|" + "---:|" * len(METRICS), *_rows(first, columns, tables)]))
    return "\n\n".join(sections)
