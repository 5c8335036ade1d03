"""``binseg evaluate``: accuracy, robustness and latency, in one of two modes.

- **bag mode** (``--bag``): the node's pipeline run offline over a rosbag2, scored against the
  bag's ground truth (:class:`~binseg_ros.bags.evaluate.BagEvaluator`), with a report.
- **dataset mode** (``--checkpoint`` + ``--data``): the robustness table of one or more
  checkpoints on the split's held-out frames (:mod:`binseg_ros.training.heldout`).

The modes share the verb because both answer "how good is this model", but no flag except
``--out`` means something in both: a flag of the other mode is refused, with the flags this
mode takes, rather than silently ignored (a user who adds ``--backend torch`` to a dataset
run must not believe it ran on that backend).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from binseg_ros.cli.args import check_output_folder, given_flags, only_in_mode, parse_size, track_given
from binseg_ros.cli.bag_args import add_bag_args, bag_rig, bag_sync, bag_topics, bag_truth
from binseg_ros.errors import BagError, ConfigError

if TYPE_CHECKING:
    from binseg_ros.bags.evaluate import BagEvaluation
    from binseg_ros.cli.args import Verbs

DATASET_FLAGS = ("--checkpoint", "--data", "--split", "--size", "--device")
DATASET_MODE_TAKES = f"dataset mode takes {', '.join(DATASET_FLAGS)}"


def register(verbs: Verbs) -> None:
    """Add ``evaluate``, which notes the flags it is given so each mode can refuse the other's."""
    from binseg_ros.training.split import SPLITS

    evaluate = track_given(
        verbs.add_parser(
            "evaluate", help="accuracy, robustness and latency: over a bag (--bag), or per subset on held-out frames"
        )
    )
    evaluate.add_argument("--bag", type=Path, help="rosbag2 folder (sqlite3 or mcap): run the node's pipeline offline")
    evaluate.add_argument("--checkpoint", type=Path, nargs="+", help="dataset mode: one or more weights files")
    evaluate.add_argument("--data", type=Path, help="dataset mode: dataset root (MM5 layout)")
    evaluate.add_argument("--split", type=Path, default=SPLITS / "mm5.yaml", help="split file; held-out ids are used")
    evaluate.add_argument(
        "--size", type=parse_size, default=(240, 320), help="dataset mode: network input HEIGHTxWIDTH"
    )
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--out", type=Path, default=Path("runs/evaluation"), help="report / robustness files here")
    predictions = evaluate.add_argument(
        "--save-predictions",
        action="store_true",
        help="bag mode: write each probability as OUT/predictions/<stamp_ns>.png (uint8)",
    )
    bag_flags = (*predictions.option_strings, *add_bag_args(evaluate))
    evaluate.set_defaults(func=cmd_evaluate, bag_flags=bag_flags)


def check_mode(args: argparse.Namespace) -> str:
    """``bag`` or ``dataset``, after refusing the other mode's flags and a mode left incomplete.

    Raises:
        ConfigError: a flag of the other mode, or neither ``--bag`` nor ``--checkpoint`` + ``--data``.
    """
    given = given_flags(args)
    if args.bag is not None:
        bag_mode_takes = f"bag mode takes --bag, {', '.join(args.bag_flags)}"
        only_in_mode(given, DATASET_FLAGS, "dataset mode (--checkpoint, --data)", bag_mode_takes)
        return "bag"
    only_in_mode(given, args.bag_flags, "bag mode (--bag)", DATASET_MODE_TAKES)
    if not args.checkpoint or args.data is None:
        raise ConfigError("evaluate needs --bag B, or --checkpoint and --data for the held-out robustness table")
    return "dataset"


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run the mode the flags name, once its output folder is known to be writable."""
    mode = check_mode(args)
    check_output_folder(args.out)
    return cmd_evaluate_bag(args) if mode == "bag" else cmd_evaluate_dataset(args)


def cmd_evaluate_dataset(args: argparse.Namespace) -> int:
    """Held-out robustness tables; print each model card updated, then the table."""
    from binseg_ros.training.heldout import evaluate_checkpoints

    result = evaluate_checkpoints(args.checkpoint, args.data, args.split, args.size, args.device, args.out)
    for card in result.cards:
        print(f"added the table to {card}")
    print(f"{result.frames} held-out frames from {result.split_file}\n{result.markdown}")
    return 0


def cmd_evaluate_bag(args: argparse.Namespace) -> int:
    """The bag run and its report; print one summary line, then the bag's degradation windows if it has any.

    What needs no bag is checked first (flags, then the engine folder), so a typo fails at once
    rather than after the bag's checksums were read. A run that scored no mask still writes its
    report (the accounting says why) and ends in an error: there is no accuracy to state.
    """
    from binseg_ros.bags.evaluate import BagEvaluator
    from binseg_ros.bags.report import window_table, write_report
    from binseg_ros.cli.bags import verify
    from binseg_ros.core.quality import QualityConfig
    from binseg_ros.engines.locate import open_engine_folder

    topics, sync, rig = bag_topics(args.topics, args.modalities), bag_sync(args), bag_rig(args)
    manifest = open_engine_folder(args.engine_dir)
    verify(args.bag, "evaluate")
    evaluator = BagEvaluator.for_engines(
        manifest,
        args.backend,
        args.form,
        sync,
        topics,
        keep_predictions=args.save_predictions,
        rig=rig,
        quality=QualityConfig() if args.quality_gate else None,
    )
    evaluation = evaluator.run(args.bag, bag_truth(args))
    report = write_report(evaluation, args.out, f"Bag evaluation: {args.bag.name}")
    overall = evaluation.overall()
    accuracy = f"IoU {overall['IoU']:.3f}, S {overall['S']:.3f}, MAE {overall['MAE']:.4f}" if overall else "none scored"
    print(
        f"{evaluation.masks} masks from {sum(evaluation.frames_in.values())} images in {evaluation.wall_s:.1f} s; "
        f"{accuracy}; report: {report}"
    )
    if evaluation.degraded_frames:
        print(f"left out by the quality gate: {evaluation.degraded_frames}")
    windows = window_table(evaluation)
    if windows:
        print(windows)
    if not overall:
        raise BagError(f"{_unscored(evaluation)}; report: {report}")
    return 0


def _unscored(evaluation: BagEvaluation) -> str:
    """Why no mask was scored: the masks' skip reasons, or the images' drop reasons when no mask was made."""
    if evaluation.masks:
        reasons = ", ".join(f"{reason} {count}" for reason, count in evaluation.mask_skips.items())
        return f"none of the {evaluation.masks} masks was scored ({reasons})"
    images = sum(evaluation.frames_in.values())
    return f"no mask was made from the {images} images (dropped: {evaluation.drops or 'none'})"
