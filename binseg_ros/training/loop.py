"""``binseg train``: balanced-modality training with resume, a log, a checkpoint and a model card.

Each step trains the full-modal prediction and, with modality dropout on, one sub-modal
prediction from the 6 proper non-empty subsets (never all missing), drawn more often the
worse that subset currently does (training/sampling.py), plus a consistency term distilling
it towards the full-modal one (EQUISeg's self-guidance). The
baseline (``modality_dropout=False``) trains the full-modal prediction only, with the same
data, epochs and seed. Model selection never looks at held-out scores: the last epoch ships.
Under ``torchrun`` the processes share the work data-parallel (training/distributed.py).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from binseg_ros.modalities import MODALITIES, all_subsets, subset_name
from binseg_ros.model import BinSegNet, ModelConfig, load_checkpoint, save_checkpoint
from binseg_ros.training.card import CARD_NAME, training_card
from binseg_ros.training.config import TrainConfig
from binseg_ros.training.data import SegmentationDataset, modality_batch
from binseg_ros.training.distributed import (
    Ranks,
    batches_per_epoch,
    data_parallel,
    from_main,
    mean_over_ranks,
    process_group,
    shard_loader,
)
from binseg_ros.training.losses import consistency_loss, segmentation_loss
from binseg_ros.training.sampling import SubsetSampler
from binseg_ros.training.split import load_split

LOG = logging.getLogger(__name__)
STATE_NAME = "last_state.pt"
LOG_NAME = "train_log.jsonl"
MODEL_NAME = "model.pt"


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


PROPER_SUBSETS = [s for s in all_subsets() if len(s) < len(MODALITIES)]
LOSS_NAMES = ("loss", "full", "sub", "consistency")


class _FullAndSub(nn.Module):
    """A step's full-modal and (balanced training) sub-modal predictions in one forward call.

    DDP prepares its gradient reduction once per forward call. Sub-modal calls skip encoders,
    and with ``find_unused_parameters`` a second call before the backward marks them unused
    although the first call's graph gives them gradients (DDP then fails). One call whose
    graph always holds the full-modal prediction uses every parameter: no search needed.
    """

    def __init__(self, net: BinSegNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, full: dict[str, torch.Tensor], sub: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.net(full), None if sub is None else self.net(sub)


@dataclass
class _Run:
    """What one training run updates: the network, its optimiser and schedule, the subset sampler.

    ``model`` is what a step calls: ``net``'s two predictions, under DDP when distributed.
    """

    net: BinSegNet
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: SubsetSampler
    ranks: Ranks

    def state(self, epoch: int) -> dict[str, Any]:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "epoch": epoch,
        }

    def restore(self, state: dict[str, Any]) -> int:
        """Load a saved state; returns the epoch to continue from."""
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        return int(state["epoch"]) + 1


def _new_run(config: TrainConfig, device: torch.device, ranks: Ranks, steps_per_epoch: int) -> _Run:
    net = (load_checkpoint(config.init)[0] if config.init else BinSegNet(ModelConfig())).to(device)
    net.set_frequency_form("fft")  # training's form, whatever form the starting weights were saved with
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.1
    )
    model = data_parallel(_FullAndSub(net), ranks, device)
    return _Run(net, model, optimizer, scheduler, SubsetSampler(PROPER_SUBSETS, floor=config.subset_floor), ranks)


def _train_epoch(
    run: _Run, config: TrainConfig, data: SegmentationDataset, epoch: int, device: torch.device, progress: bool
) -> dict[str, Any]:
    """One pass over the training frames; returns the epoch's log record."""
    run.model.train()
    data.set_epoch(epoch)
    loader = shard_loader(data, config.batch_size, config.workers, config.seed, epoch, run.ranks)
    subsets = random.Random(config.seed * 1000 + epoch)
    totals = dict.fromkeys(LOSS_NAMES, 0.0)
    started = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not progress)
    for batch in bar:
        losses = _step(run, config, batch, subsets, device)
        for key, value in losses.items():
            totals[key] += value / len(loader)
        bar.set_postfix(loss=f"{losses['loss']:.3f}")
    record: dict[str, Any] = {
        "epoch": epoch + 1,
        **totals,
        "lr": run.scheduler.get_last_lr()[0],
        "seconds": time.perf_counter() - started,
    }
    if config.modality_dropout:
        record["subset_probabilities"] = run.sampler.probabilities()
    return record


def _step(
    run: _Run, config: TrainConfig, batch: dict[str, torch.Tensor], subsets: random.Random, device: torch.device
) -> dict[str, float]:
    """One optimiser step: the full-modal loss, plus (balanced training) a drawn subset's loss
    and its consistency with the full-modal prediction.

    Returns the losses averaged over ranks; the sampler folds in that mean, so every rank
    keeps the same sampler and draws the same subset next step.
    """
    target = batch["target"].to(device)
    subset = run.sampler.draw(subsets) if config.modality_dropout else None
    sub_inputs = None if subset is None else modality_batch(batch, subset, device)
    full_logits, sub_logits = run.model(modality_batch(batch, MODALITIES, device), sub_inputs)
    full = segmentation_loss(full_logits, target)
    loss = full
    sub = consistency = torch.zeros((), device=device)
    if sub_logits is not None:
        sub = segmentation_loss(sub_logits, target)
        consistency = consistency_loss(sub_logits, full_logits)
        loss = full + sub + config.consistency_weight * consistency
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.scheduler.step()
    means = mean_over_ranks(torch.stack([loss, full, sub, consistency]).detach(), run.ranks)
    losses = dict(zip(LOSS_NAMES, means.tolist(), strict=True))
    if subset is not None:
        run.sampler.update(subset, losses["sub"])
    return losses


def train(config: TrainConfig, resume: bool = True, progress: bool = True, stop_after: int = 0) -> Path | None:
    """Train, writing ``out_dir``/{train_log.jsonl, last_state.pt, model.pt, model_card.md}; returns model.pt.

    ``stop_after`` > 0 ends this run after that many epochs (state saved, no model.pt, returns
    None), so a long training can be split over several runs of the command and resumed.
    Under ``torchrun`` every process runs this: each trains on its share of the frames,
    rank 0 alone reads the saved state and writes the run folder, and all return the same.
    """
    ranks = Ranks.from_environment()
    device = ranks.device(_device(config.device))
    with process_group(ranks, device):
        return _train(config, ranks, device, resume, progress and ranks.is_main, stop_after)


def _train(
    config: TrainConfig, ranks: Ranks, device: torch.device, resume: bool, progress: bool, stop_after: int
) -> Path | None:
    out = Path(config.out_dir)
    if ranks.is_main:
        out.mkdir(parents=True, exist_ok=True)
    _seed_everything(config.seed)
    ids = load_split(config.split_file).train_ids()[: config.limit or None]
    data = SegmentationDataset(
        Path(config.data_root), ids, config.size, config.augment, config.labels, config.layout, seed=config.seed
    )
    steps = batches_per_epoch(len(data), config.batch_size, ranks)
    run = _new_run(config, device, ranks, steps)
    if ranks.distributed:
        LOG.info("rank %d of %d on %s: %d steps per epoch", ranks.rank, ranks.world_size, device, steps)
    state_path = out / STATE_NAME
    found = ranks.is_main and resume and state_path.is_file()
    state = from_main(torch.load(state_path, map_location="cpu", weights_only=True) if found else None, ranks)
    start_epoch = 0 if state is None else run.restore(state)
    if state is not None:
        LOG.info("resumed from %s at epoch %d", state_path, start_epoch)
    end_epoch = min(config.epochs, start_epoch + stop_after) if stop_after else config.epochs
    for epoch in range(start_epoch, end_epoch):
        record = _train_epoch(run, config, data, epoch, device, progress)
        if ranks.is_main:
            with (out / LOG_NAME).open("a") as log:
                log.write(json.dumps(record) + "\n")
            torch.save(run.state(epoch), state_path)
    if end_epoch < config.epochs:
        LOG.info("stopped after epoch %d of %d; run again to resume", end_epoch, config.epochs)
        return None
    return _save_model(config, run.net, out) if ranks.is_main else out / MODEL_NAME


def _save_model(config: TrainConfig, net: BinSegNet, out: Path) -> Path:
    """The trained checkpoint with its metadata, and the model card from the training log."""
    mode = ("balanced" if config.modality_dropout else "baseline") + ("-degrade" if config.augment.degrade else "")
    metadata = {
        # "-ft": a fine-tune's recipe names its last epochs only; without the mark it would carry
        # the name of a run trained from fresh weights with the same recipe.
        "version": f"{mode}-e{config.epochs}-s{config.seed}" + ("-ft" if config.init else ""),
        "train_config": json.loads(json.dumps(asdict(config), default=sorted)),  # frozensets → lists
        "subsets_trained": [subset_name(s) for s in all_subsets()]
        if config.modality_dropout
        else ["rgb+depth+thermal"],
    }
    model = save_checkpoint(net.cpu().eval(), out / MODEL_NAME, metadata)
    log = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    (out / CARD_NAME).write_text(training_card(config, net, log))
    return model
