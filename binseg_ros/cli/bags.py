"""``binseg make-bag`` and ``binseg replay``: a dataset as a robot's rosbag2, and a bag played
through a live ``segment_node``.

make-bag gives the offline evaluation (``binseg evaluate --bag``) and the live replay the same
input a robot would record: per-camera clocks, dropouts, ground truth on its own topic
(:mod:`binseg_ros.bags.make`). replay (:mod:`binseg_ros.ros.replay`) is imported only when it
runs, so a machine without ROS 2 still makes and evaluates bags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from binseg_ros.cli.args import (
    add_dataset_args,
    check_output_folder,
    folder_layout,
    given_flags,
    key_values,
    label_map,
    only_in_mode,
    parse_size,
    track_given,
)
from binseg_ros.cli.bag_args import add_bag_args, bag_sync, bag_topics, bag_truth

if TYPE_CHECKING:
    from binseg_ros.cli.args import Verbs
    from binseg_ros.datasets import FolderLayout

MISSING_SHOWN = 5  # missing frame ids a make-bag error names


def register(verbs: Verbs) -> None:
    """Add ``make-bag`` and ``replay``."""
    _register_make_bag(verbs)
    _register_replay(verbs)


def _register_make_bag(verbs: Verbs) -> None:
    from binseg_ros.bags.io import STORAGES
    from binseg_ros.degrade import KINDS
    from binseg_ros.training.split import FRAME_CHOICES, SPLITS

    make = verbs.add_parser("make-bag", help="a dataset folder as a rosbag2 with sensor timing, dropouts, ground truth")
    make.add_argument("--data", type=Path, required=True, help="dataset root")
    make.add_argument("--out", type=Path, required=True, help="new bag folder")
    make.add_argument(
        "--frames",
        choices=FRAME_CHOICES,
        default="held-out",
        help="which frames: the split's held-out or training groups, or every frame",
    )
    make.add_argument("--split", type=Path, default=SPLITS / "mm5.yaml", help="split file for --frames")
    make.add_argument("--limit", type=int, default=0, help="only the first N frames")
    make.add_argument("--storage", choices=sorted(STORAGES), default="mcap")
    make.add_argument("--size", type=parse_size, help="resize images to HEIGHTxWIDTH (default: as stored)")
    make.add_argument("--hold", type=float, default=1 / 15, help="seconds each dataset frame stays in view")
    make.add_argument(
        "--rates", type=key_values, default={}, help="camera rates in Hz, e.g. thermal=9 (default 15 each)"
    )
    make.add_argument("--dropout", action="append", default=[], help="MODALITY:START_S:END_S silence (repeatable)")
    make.add_argument(
        "--degrade",
        action="append",
        default=[],
        help="MODALITY:KIND:START_S:END_S, e.g. rgb:dark:1:2: that camera's images degraded in the window "
        f"(repeatable; kinds: {'; '.join(f'{m} ' + '|'.join(kinds) for m, kinds in KINDS.items())})",
    )
    make.add_argument("--drop-probability", type=float, default=0.0, help="chance each message is lost")
    make.add_argument(
        "--topics", type=key_values, default={}, help="topic names, e.g. rgb=/cam/color (default /<m>/image)"
    )
    make.add_argument("--gt-topic", default="/ground_truth/mask", help="ground-truth mask topic (mono8)")
    make.add_argument(
        "--compressed",
        action="store_true",
        help="image_transport topics (CompressedImage): <topic>/compressed (rgb jpeg, thermal png), "
        "<topic>/compressedDepth (depth png)",
    )
    make.add_argument(
        "--rig", type=Path, help="rig file: render the (registered) dataset into its cameras' resolutions and poses"
    )
    make.add_argument("--seed", type=int, default=0)
    add_dataset_args(make)
    make.set_defaults(func=cmd_make_bag)


def _register_replay(verbs: Verbs) -> None:
    replay = track_given(
        verbs.add_parser("replay", help="play a bag to segment_node over ROS 2, record and evaluate its masks")
    )
    replay.add_argument("--bag", type=Path, required=True, help="rosbag2 folder (sqlite3 or mcap)")
    replay.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    replay.add_argument("--out", type=Path, default=Path("runs/replay"), help="recorded bag and reports here")
    replay.add_argument("--node-running", action="store_true", help="talk to a segment_node already running")
    replay.add_argument("--node-name", default="segment_node", help="the node whose ~/mask is recorded")
    add_bag_args(replay)
    replay.set_defaults(func=cmd_replay)


def cmd_make_bag(args: argparse.Namespace) -> int:
    """Write the bag; print its path, duration and the messages per topic."""
    from binseg_ros.bags.make import DegradeSchedule, DegradeWindow, Dropout, MakeBagConfig, clocks_at, make_bag
    from binseg_ros.calibration.files import load_rig

    layout = folder_layout(args)
    ids = bag_frames(args, layout)
    config = MakeBagConfig(
        hold_s=args.hold,
        clocks=clocks_at(args.rates),
        dropouts=tuple(Dropout.parse(d) for d in args.dropout),
        degrade=DegradeSchedule(tuple(DegradeWindow.parse(d) for d in args.degrade)),
        drop_probability=args.drop_probability,
        size=args.size,
        topics=bag_topics(args.topics),
        gt_topic=args.gt_topic,
        storage=args.storage,
        seed=args.seed,
        compressed=args.compressed,
        rig=load_rig(args.rig) if args.rig is not None else None,
    )
    summary = make_bag(args.data, ids, args.out, config, layout, label_map(args))
    print(f"wrote {summary.path} ({args.storage}): {summary.frames} frames, {summary.duration_s:.1f} s")
    for topic, count in summary.written.items():
        print(f"  {topic:<24} {count} messages")
    if summary.silenced or summary.dropped:
        print(f"  silenced by dropouts: {summary.silenced or 'none'}; random drops: {summary.dropped or 'none'}")
    for window, count in summary.degraded.items():
        print(f"  degraded {window}: {count} images")
    return 0


def bag_frames(args: argparse.Namespace, layout: FolderLayout) -> list[str]:
    """The first ``--limit`` of the ``--frames`` ids, each of them in the ``--data`` folder.

    The split file lists the ids of one dataset (MM5 by default): given another folder, an id it
    lacks would stop make-bag at its first missing image with only a file name. Checked here, the
    error names the split in use and how to take the folder's own frames instead.

    Raises:
        InputError: the split names frames the folder does not hold.
    """
    from binseg_ros.datasets import list_ids
    from binseg_ros.errors import InputError
    from binseg_ros.training.split import frame_ids

    ids = frame_ids(args.frames, args.data, args.split, layout)[: args.limit or None]
    if args.frames == "all":
        return ids  # listed from the folder itself
    present = set(list_ids(args.data, layout))
    missing = [i for i in ids if i not in present]
    if missing:
        shown = ", ".join(missing[:MISSING_SHOWN]) + (", …" if len(missing) > MISSING_SHOWN else "")
        raise InputError(
            f"{len(missing)} of the {len(ids)} {args.frames} frames of split {args.split} are not in "
            f"{args.data / layout.rgb} (ids {shown}); --frames all writes every frame of the folder, "
            "or --split names a split of this dataset"
        )
    return ids


def verify(bag: Path, verb: str) -> None:
    """Check the bag's checksums before ``verb`` reads anything of it (its ground truth included).

    A damaged chunk raises :class:`~binseg_ros.errors.BagError` (one line, exit code 2); a bag
    written without checksums is read all the same, after a warning on stderr.
    """
    from binseg_ros.bags.integrity import verify_bag

    integrity = verify_bag(bag)
    if integrity.unverifiable:
        print(f"binseg {verb}: warning: {integrity.unverifiable}", file=sys.stderr)


def cmd_replay(args: argparse.Namespace) -> int:
    """Offline evaluation, live replay, comparison; print the report's summary and path."""
    if not args.node_running:  # the node replay starts is named segment_node: another name is never found
        only_in_mode(
            given_flags(args),
            ("--node-name",),
            "a node already running (--node-running)",
            "replay starts its own segment_node otherwise",
        )
    topics, sync = bag_topics(args.topics, args.modalities), bag_sync(args)
    check_output_folder(args.out)
    verify(args.bag, "replay")  # before ROS is imported: a damaged bag is refused without it
    from binseg_ros.ros.replay import ReplayOptions, run_replay

    options = ReplayOptions(
        bag=args.bag,
        out=args.out,
        engine_dir=args.engine_dir,
        backend=args.backend,
        form=args.form,
        topics=topics,
        sync=sync,
        rate=args.rate,
        node_running=args.node_running,
        node_name=args.node_name,
        calibration=args.calibration,
        quality_gate=args.quality_gate,
    )
    report = run_replay(options, bag_truth(args))
    print(report.read_text().split("\n\n| run")[0] + f"\nreport: {report}")
    return 0
