"""Held-out evaluation of trained checkpoints, written where its readers look.

``binseg evaluate --checkpoint ... --data ...`` (dataset mode) runs here: two robustness
tables per checkpoint over the split's held-out frames (:mod:`binseg_ros.training.evaluate`),
one over missing sensors (every subset) and one over degraded sensors,
saved as ``robustness.json`` (for scripts) and ``robustness.md`` (for people), and added to
the model card beside each checkpoint (:mod:`binseg_ros.training.card`), which ``binseg
export`` then carries into the engine folder. Keeping it out of the CLI lets a script or test
run the same evaluation and get the paths back instead of parsing printed text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from binseg_ros.backends.torch import TorchBackend
from binseg_ros.datasets import load_frame
from binseg_ros.errors import InputError
from binseg_ros.model import load_checkpoint
from binseg_ros.training.card import CARD_NAME, add_evaluation
from binseg_ros.training.evaluate import (
    Table,
    degradation_table,
    format_side_by_side,
    format_table,
    robustness_table,
)
from binseg_ros.training.split import load_split

DEGRADED_COLUMNS = ("IoU", "S", "MAE")


@dataclass(frozen=True)
class HeldOutEvaluation:
    """What :func:`evaluate_checkpoints` computed and wrote."""

    frames: int  # held-out frames scored
    split_file: Path
    markdown: str  # the table(s) as written to robustness.md
    files: tuple[Path, ...]  # robustness.json, robustness.md
    cards: tuple[Path, ...]  # model cards that now carry the table


def table_names(checkpoints: Sequence[Path], metadata: Sequence[dict[str, Any]]) -> list[str]:
    """One distinct table name per checkpoint: its version, then ``version (folder)`` for versions
    that two checkpoints share; an InputError when even that repeats (the same file twice)."""
    versions = [str(m.get("version", c.stem)) for c, m in zip(checkpoints, metadata, strict=True)]
    names = [
        f"{v} ({c.resolve().parent.name})" if versions.count(v) > 1 else v
        for c, v in zip(checkpoints, versions, strict=True)
    ]
    if len(set(names)) < len(names):
        raise InputError(f"checkpoints {[str(c) for c in checkpoints]} cannot be told apart: name each once")
    return names


def evaluate_checkpoints(
    checkpoints: Sequence[Path], data: Path, split_file: Path, size: tuple[int, int], device: str, out: Path
) -> HeldOutEvaluation:
    """Score every checkpoint on every modality subset of ``split_file``'s held-out frames.

    Each table is named after the checkpoint's ``version`` (its file stem without one), with its
    folder added when two checkpoints share a version (a fine-tune of a run with the same recipe
    would otherwise overwrite the table of the run it started from). The
    tables go to ``out/robustness.json`` and ``out/robustness.md``; a ``model_card.md`` next
    to a checkpoint gets the markdown as its held-out section (replacing an earlier one).
    """
    ids = load_split(split_file).held_out_ids()
    frames = [load_frame(data, frame_id) for frame_id in ids]
    tables: dict[str, Table] = {}
    degraded: dict[str, Table] = {}
    loaded = [load_checkpoint(checkpoint) for checkpoint in checkpoints]
    names = table_names(checkpoints, [metadata for _, metadata in loaded])
    for name, (net, _) in zip(names, loaded, strict=True):
        backend = TorchBackend(net, size, device)
        tables[name] = robustness_table(backend, size, frames)
        degraded[name] = degradation_table(backend, size, frames)
    out.mkdir(parents=True, exist_ok=True)
    markdown = (
        format_table(tables)
        + "\n\n### Degraded sensors\n\nThe full-modal engine with one sensor degraded (`binseg_ros/degrade.py`, "
        "fixed strengths) on every held-out frame, ungated: what the network itself makes of a degraded "
        "sensor (the node's quality gate leaves these kinds out at these strengths; milder ones reach the "
        "network).\n\n" + format_side_by_side(degraded, "degradation", DEGRADED_COLUMNS)
    )
    files = (out / "robustness.json", out / "robustness.md")
    files[0].write_text(json.dumps({"subsets": tables, "degradations": degraded}, indent=2))
    files[1].write_text(markdown + "\n")
    cards = []
    for checkpoint in checkpoints:
        card = checkpoint.parent / CARD_NAME
        if card.is_file():
            add_evaluation(card, markdown, len(ids), split_file)
            cards.append(card)
    return HeldOutEvaluation(len(ids), split_file, markdown, files, tuple(cards))
