"""The model card of a training run: what the weights were trained on, how, and how well.

``binseg train`` writes ``model_card.md`` next to ``model.pt`` (data, split, augmentations,
schedule, time and hardware, size); ``binseg evaluate`` adds the held-out robustness table
to it; ``binseg export`` copies it into the engine folder, so the card travels with the
engines a robot runs. Sections are replaced, not appended, so re-evaluating stays tidy.
"""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from binseg_ros.engines.export import CARD_NAME
from binseg_ros.model import BinSegNet
from binseg_ros.training.config import TrainConfig
from binseg_ros.training.split import load_split

__all__ = ["CARD_NAME", "add_evaluation", "hardware", "training_card"]

EVALUATION_HEADING = "## Held-out evaluation"


def hardware() -> str:
    """One line naming the device training ran on."""
    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def training_card(config: TrainConfig, net: BinSegNet, log: list[dict[str, Any]]) -> str:
    """Markdown for a finished run; ``config`` is the run's TrainConfig, ``log`` its epoch records."""
    split = load_split(config.split_file)
    seconds = sum(float(record["seconds"]) for record in log)  # over every resumed session
    last = log[-1]
    params = sum(p.numel() for p in net.parameters())
    mode = (
        "balanced: full-modal + one sub-modal subset per step (loss-proportional sampling, "
        f"uniform share {config.subset_floor}) "
        f"+ consistency × {config.consistency_weight}"
        if config.modality_dropout
        else "baseline: full-modal only (no modality dropout)"
    )
    lines = [
        f"# Model card: {net.config.name}",
        "",
        "## Model",
        f"- Architecture `{net.config.name}`: {params:,} parameters (all three encoders); "
        f"frequency form `{net.config.frequency_form}` for training.",
        f"- Normalisation (in the graph): `{json.dumps(net.config.normalization.to_dict())}`",
        "- Task: binary; foreground = "
        + (f"label ids {sorted(config.labels.positive)}" if config.labels.positive else "every label > 0 (`objects`)")
        + ".",
        "",
        "## Data and split",
        f"- Data: `{Path(config.data_root).name}` ({config.data_root}), folders `{json.dumps(asdict(config.layout))}`.",
        f"- Split: `{Path(config.split_file).name}`, by scene group: {len(split.train)} groups / "
        f"{len(split.train_ids())} frames for training, {len(split.held_out)} groups / "
        f"{len(split.held_out_ids())} frames held out (never used for training or selection).",
        "",
        "## Training",
        f"- {mode}.",
        *([f"- Fine-tuned: started from the weights `{config.init}`, not from fresh ones."] if config.init else []),
        f"- {len(log)} epochs at {config.size[0]}×{config.size[1]}, batch {config.batch_size}, AdamW lr "
        f"{config.lr:g} one-cycle, weight decay {config.weight_decay:g}, seed {config.seed}; the last epoch ships.",
        f"- Augmentations: `{json.dumps(asdict(config.augment))}` (geometric ones shared by all modalities, "
        "photometric ones per modality).",
        "- Final epoch losses: "
        + ", ".join(f"{k} {float(last[k]):.3f}" for k in ("loss", "full", "sub", "consistency")),
        f"- Time: {seconds / 60:.1f} min on {hardware()}.",
        "",
    ]
    return "\n".join(lines)


def add_evaluation(card: Path, markdown_table: str, frames: int, split_file: str | Path) -> None:
    """Put the held-out robustness table into ``card``, replacing an earlier one."""
    text = card.read_text()
    text = re.sub(rf"\n{re.escape(EVALUATION_HEADING)}\n.*", "\n", text, flags=re.S).rstrip() + "\n"
    text += (
        f"\n{EVALUATION_HEADING}\n\n{frames} held-out frames ({Path(split_file).name}), metrics from pysodmetrics "
        "at the label resolution, every subset with the same weights:\n\n" + markdown_table + "\n"
    )
    card.write_text(text)
