"""``binseg train`` under torchrun: two gloo processes on the CPU train one model together.

Each process runs the real CLI through a small launcher that, once training returns, saves
what that rank ended with (its weights and its subset sampler) next to the run folder, so
the ranks can be compared without any test-only path in the product.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from binseg_ros.model import load_checkpoint
from binseg_ros.training.loop import LOG_NAME, MODEL_NAME, STATE_NAME
from binseg_ros.training.split import SPLITS

LAUNCHER = """
import os, sys
import torch
from binseg_ros.cli import main
from binseg_ros.training import loop

runs = []
new_run = loop._new_run


def recording_new_run(*args):
    runs.append(new_run(*args))
    return runs[-1]


loop._new_run = recording_new_run
code = main(sys.argv[2:])
ended = {"params": {n: p.detach().cpu() for n, p in runs[-1].net.named_parameters()}, "sampler": runs[-1].sampler.ema}
torch.save(ended, os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.pt"))
sys.exit(code)
"""


def _torchrun(launcher: Path, dumps: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per rank on a small machine
    done = subprocess.run([*command, str(launcher), str(dumps), *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_ranks_train_one_model_and_resume(mm5_root: Path, tmp_path: Path) -> None:
    launcher, dumps, out = tmp_path / "launch.py", tmp_path / "dumps", tmp_path / "run"
    launcher.write_text(LAUNCHER)
    dumps.mkdir()
    train = ["train", "--data", str(mm5_root), "--split", str(SPLITS / "mm5.yaml"), "--out", str(out)]
    train += ["--size", "48x64", "--limit", "8", "--batch-size", "2", "--epochs", "3", "--lr", "3e-3"]
    train += ["--seed", "3", "--device", "cpu"]

    first = _torchrun(launcher, dumps, [*train, "--stop-after", "2"])
    assert "rank 0 of 2" in first.stderr and "rank 1 of 2" in first.stderr
    assert "2 steps per epoch" in first.stderr  # 8 frames dealt out: 4 per rank, batches of 2
    assert (out / STATE_NAME).is_file() and not (out / MODEL_NAME).exists()

    second = _torchrun(launcher, dumps, train)
    assert "resumed from" in second.stderr and "at epoch 2" in second.stderr
    log = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]  # rank 0 alone writes: no line twice
    assert log[-1]["loss"] < log[0]["loss"]

    ranks = [torch.load(dumps / f"rank{rank}.pt") for rank in (0, 1)]
    shipped = dict(load_checkpoint(out / MODEL_NAME)[0].named_parameters())
    assert ranks[0]["params"].keys() == ranks[1]["params"].keys() == shipped.keys()
    for name, value in ranks[1]["params"].items():
        assert torch.equal(value, ranks[0]["params"][name]) and torch.equal(value, shipped[name]), name
    # Each rank saw other frames, so only losses averaged over ranks leave the samplers alike
    # (and with them the subset every rank draws each step).
    assert ranks[0]["sampler"] == ranks[1]["sampler"] and len(set(ranks[0]["sampler"].values())) > 1
