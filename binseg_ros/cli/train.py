"""``binseg train``: train on a registered RGB/depth/thermal folder, resumable run by run.

The flags map one to one onto :class:`~binseg_ros.training.loop.TrainConfig`; the loop, its
saved state and the model card are :mod:`binseg_ros.training`'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from binseg_ros.cli.args import add_dataset_args, folder_layout, label_map, parse_size

if TYPE_CHECKING:
    from binseg_ros.cli.args import Verbs


def register(verbs: Verbs) -> None:
    """Add ``train``."""
    from binseg_ros.degrade import TRAINING_PROBABILITY
    from binseg_ros.training.split import SPLITS

    train = verbs.add_parser("train", help="train on a registered RGB/depth/thermal folder (MM5 layout)")
    train.add_argument("--data", type=Path, required=True, help="dataset root (RGB/ Depth/ Thermal/ labels)")
    train.add_argument("--split", type=Path, default=SPLITS / "mm5.yaml", help="split file (scene groups)")
    train.add_argument("--out", type=Path, default=Path("runs/balanced"), help="run folder (log, state, model)")
    train.add_argument("--size", type=parse_size, default=(240, 320), help="training HEIGHTxWIDTH")
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--no-modality-dropout", action="store_true", help="the baseline: full-modal only")
    train.add_argument("--consistency-weight", type=float, default=0.5)
    train.add_argument(
        "--subset-floor",
        type=float,
        default=0.5,
        help="share of sub-modal draws spread evenly over the subsets; the rest goes by each subset's loss",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto (cuda when torch sees a GPU) | cpu | cuda | cuda:N")
    train.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    train.add_argument("--limit", type=int, default=0, help="use only the first N training ids (smoke runs)")
    train.add_argument(
        "--degrade-probability",
        type=float,
        default=TRAINING_PROBABILITY,
        help="chance that each sensor of a sample is degraded (binseg_ros/degrade.py); 0 turns it off",
    )
    train.add_argument("--init", type=Path, help="weights file to start from (fine-tuning), e.g. a shipped weights.pt")
    train.add_argument("--stop-after", type=int, default=0, help="end this run after N epochs (resume later)")
    train.add_argument("--restart", action="store_true", help="ignore saved state in --out")
    add_dataset_args(train)
    train.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume) the run in ``--out``; print the checkpoint, or how to resume."""
    from binseg_ros.training.config import TrainConfig
    from binseg_ros.training.data import Augment
    from binseg_ros.training.loop import train

    config = TrainConfig(
        data_root=str(args.data),
        split_file=str(args.split),
        out_dir=str(args.out),
        size=args.size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        modality_dropout=not args.no_modality_dropout,
        consistency_weight=args.consistency_weight,
        subset_floor=args.subset_floor,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        limit=args.limit,
        init=str(args.init) if args.init else None,
        augment=Augment(degrade=args.degrade_probability),
        layout=folder_layout(args),
        labels=label_map(args),
    )
    model = train(config, resume=not args.restart, stop_after=args.stop_after)
    print(f"checkpoint: {model}" if model else f"stopped; resume with the same command (state in {args.out})")
    return 0
