"""Data-parallel training under ``torchrun``: one process per GPU (or CPU), gradients averaged.

``torchrun`` tells each process its place through the environment (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``); without it a run is one process and nothing here touches
``torch.distributed``, so single-process training stays exactly what it was. With it, each
process trains on its shard of the frames (``DistributedSampler``), DDP averages the
gradients, and whatever steers the run beyond the weights (the subset draw, the saved state
on resume, the logged losses) is made the same on every rank by the helpers below: ranks
that disagree on the subset or the epoch would run different graphs and deadlock or drift.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from binseg_ros.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_environment(cls) -> Ranks:
        """What ``torchrun`` set; one process of one when it did not start this one."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        try:
            return cls(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))
        except KeyError as exc:
            raise ConfigError(
                f"WORLD_SIZE is set but {exc.args[0]} is not: start distributed runs with torchrun"
            ) from exc

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run folder, so ranks never race on one file."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """Each process's own GPU (its ``LOCAL_RANK``): two ranks on one GPU would only contend."""
        if not self.distributed or device.type != "cuda":
            return device
        if device.index not in (None, self.local_rank):
            raise ConfigError(f"under torchrun each process takes the GPU of its LOCAL_RANK; use cuda, not {device}")
        return torch.device("cuda", self.local_rank)


@contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """Join torchrun's process group for the run (nccl between GPUs, gloo between CPUs), then leave it.

    A run that ends normally waits for every rank first, so when ``train`` returns on any
    rank, rank 0 has written the model.
    """
    if not ranks.distributed:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
        dist.barrier()
    finally:
        dist.destroy_process_group()


def data_parallel(module: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """``module`` under DDP when distributed (rank 0's weights copied to all), else ``module`` itself.

    No ``find_unused_parameters``: the step's one forward call always includes the
    full-modal prediction, which uses every parameter, so DDP skips the graph search it
    would otherwise run each step.
    """
    if not ranks.distributed:
        return module
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def shard_loader(data: Dataset, batch_size: int, workers: int, seed: int, epoch: int, ranks: Ranks) -> DataLoader:
    """This rank's batches of ``epoch``: a fresh shuffle per epoch, the same on every run with ``seed``.

    One process shuffles with its own seeded generator (the order single-process training
    always had); under torchrun ``DistributedSampler`` deals each rank a disjoint share of
    one shuffle (padded to equal length, so every rank takes the same number of steps).
    """
    if not ranks.distributed:
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        return DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=workers, generator=generator)
    sampler: DistributedSampler[int] = DistributedSampler(data, ranks.world_size, ranks.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=workers)


def batches_per_epoch(frames: int, batch_size: int, ranks: Ranks) -> int:
    """Steps each rank takes per epoch (the learning-rate schedule's unit)."""
    shard = -(-frames // ranks.world_size)
    return -(-shard // batch_size)


def mean_over_ranks(values: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The mean of ``values`` over all ranks (``values`` itself in one process)."""
    if not ranks.distributed:
        return values
    total = values.clone()
    dist.all_reduce(total)
    return total / ranks.world_size


def from_main(value: T, ranks: Ranks) -> T:
    """Rank 0's ``value`` on every rank: only rank 0 reads the run folder, which other machines may not share."""
    if not ranks.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
