"""``binseg train``: balanced-modality training with resume, a log, a checkpoint and a model card.

Each step trains the full-modal prediction and, with modality dropout on, one sub-modal
prediction from the 6 proper non-empty subsets (never all missing), drawn more often the
worse that subset currently does (training/sampling.py), plus a consistency term distilling
it towards the full-modal one (EQUISeg's self-guidance). The
baseline (``modality_dropout=False``) trains the full-modal prediction only, with the same
data, epochs and seed. Model selection never looks at held-out scores: the last epoch ships.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from binseg_ros.datasets import FolderLayout, LabelMap
from binseg_ros.modalities import MODALITIES, all_subsets, subset_name
from binseg_ros.model import BinSegNet, ModelConfig, save_checkpoint
from binseg_ros.training.card import CARD_NAME, training_card
from binseg_ros.training.data import Augment, SegmentationDataset, modality_batch
from binseg_ros.training.losses import consistency_loss, segmentation_loss
from binseg_ros.training.sampling import SubsetSampler
from binseg_ros.training.split import load_split

LOG = logging.getLogger(__name__)
STATE_NAME = "last_state.pt"
LOG_NAME = "train_log.jsonl"
MODEL_NAME = "model.pt"


@dataclass(frozen=True)
class TrainConfig:
    data_root: str
    split_file: str
    out_dir: str
    size: tuple[int, int] = (240, 320)
    epochs: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    modality_dropout: bool = True
    consistency_weight: float = 0.5
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    limit: int = 0  # use only the first N training ids (smoke runs); 0 = all
    augment: Augment = field(default_factory=Augment)
    layout: FolderLayout = field(default_factory=FolderLayout)
    labels: LabelMap = field(default_factory=LabelMap)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


PROPER_SUBSETS = [s for s in all_subsets() if len(s) < len(MODALITIES)]


def train(config: TrainConfig, resume: bool = True, progress: bool = True, stop_after: int = 0) -> Path | None:
    """Train, writing ``out_dir``/{train_log.jsonl, last_state.pt, model.pt, model_card.md}; returns model.pt.

    ``stop_after`` > 0 ends this run after that many epochs (state saved, no model.pt, returns
    None), so a long training can be split over several sessions and resumed.
    """
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _seed_everything(config.seed)
    device = _device(config.device)
    split = load_split(config.split_file)
    ids = split.train_ids()[: config.limit or None]
    data = SegmentationDataset(Path(config.data_root), ids, config.size, config.augment, config.labels, config.layout,
                               seed=config.seed)
    net = BinSegNet(ModelConfig()).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(data) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.1
    )
    sampler = SubsetSampler(PROPER_SUBSETS)
    start_epoch = 0
    state_path = out / STATE_NAME
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        start_epoch = int(state["epoch"]) + 1
        LOG.info("resumed from %s at epoch %d", state_path, start_epoch)

    end_epoch = min(config.epochs, start_epoch + stop_after) if stop_after else config.epochs
    for epoch in range(start_epoch, end_epoch):
        net.train()
        data.set_epoch(epoch)
        loader = DataLoader(
            data, batch_size=config.batch_size, shuffle=True, num_workers=config.workers, drop_last=False,
            generator=torch.Generator().manual_seed(config.seed * 1000 + epoch),
        )
        subsets = random.Random(config.seed * 1000 + epoch)
        totals: dict[str, float] = {"loss": 0.0, "full": 0.0, "sub": 0.0, "consistency": 0.0}
        started = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not progress)
        for batch in bar:
            target = batch["target"].to(device)
            full_logits = net(modality_batch(batch, MODALITIES, device))
            full = segmentation_loss(full_logits, target)
            loss = full
            sub = consistency = torch.zeros((), device=device)
            if config.modality_dropout:
                subset = sampler.draw(subsets)
                sub_logits = net(modality_batch(batch, subset, device))
                sub = segmentation_loss(sub_logits, target)
                sampler.update(subset, sub.item())
                consistency = consistency_loss(sub_logits, full_logits)
                loss = full + sub + config.consistency_weight * consistency
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            for key, value in (("loss", loss), ("full", full), ("sub", sub), ("consistency", consistency)):
                totals[key] += value.item() / len(loader)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        record = {"epoch": epoch + 1, **totals, "lr": scheduler.get_last_lr()[0],
                  "seconds": time.perf_counter() - started}
        if config.modality_dropout:
            record["subset_probabilities"] = sampler.probabilities()
        with (out / LOG_NAME).open("a") as log:
            log.write(json.dumps(record) + "\n")
        torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(), "epoch": epoch},
                   state_path)

    if end_epoch < config.epochs:
        LOG.info("stopped after epoch %d of %d; run again to resume", end_epoch, config.epochs)
        return None
    metadata = {
        "version": f"{'balanced' if config.modality_dropout else 'baseline'}-e{config.epochs}-s{config.seed}",
        "train_config": json.loads(json.dumps(asdict(config), default=sorted)),  # frozensets → lists
        "subsets_trained": [subset_name(s) for s in all_subsets()] if config.modality_dropout else ["rgb+depth+thermal"],
    }
    model = save_checkpoint(net.cpu().eval(), out / MODEL_NAME, metadata)
    log = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    (out / CARD_NAME).write_text(training_card(config, net, log))
    return model
