"""Flags of the bag runs (``evaluate --bag``, ``replay``) and what they turn into: the topics
to read, the synchroniser, the rig, the ground truth, each checked before the bag is read.

``--modalities`` names the sensors the robot has, spelled as the node's ``modalities``
parameter; only their topics are read, so a robot without a thermal camera is evaluated on
the bag it records. ``--topics`` is checked against it (see :func:`bag_topics`).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from binseg_ros.backends.factory import BACKEND_NAMES
from binseg_ros.cli.args import key_values, non_negative_float, subset
from binseg_ros.errors import ConfigError
from binseg_ros.modalities import MODALITIES, Subset, canonical, subset_name

if TYPE_CHECKING:
    from binseg_ros.bags.groundtruth import GroundTruth
    from binseg_ros.calibration.model import Rig
    from binseg_ros.core.sync import SyncConfig


def add_bag_args(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """What a bag run needs beyond the bag: engines, backend, topics, ground truth, sync; returns
    the flags it added, for a verb with another mode to refuse them there."""
    from binseg_ros.core.sync import SyncConfig
    from binseg_ros.forms import PORTABLE_FORMS

    added = [
        parser.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)"),
        parser.add_argument(
            "--backend",
            default="onnxruntime",
            choices=BACKEND_NAMES,
            help="inference runtime, as the node's backend parameter",
        ),
        parser.add_argument(
            "--form", default="matmul", choices=PORTABLE_FORMS, help="ONNX graph form: " + " | ".join(PORTABLE_FORMS)
        ),
        parser.add_argument(
            "--topics", type=key_values, default={}, help="image topics, e.g. rgb=/cam/color (default /<m>/image)"
        ),
        parser.add_argument(
            "--gt-topic",
            default="/ground_truth/mask",
            help="ground-truth mask topic in the bag: mono8 Image or CompressedImage, 0/255 or 0/1",
        ),
        parser.add_argument("--gt-dir", type=Path, help="ground truth as PNGs named <stamp_ns>.png instead of a topic"),
        parser.add_argument(
            "--gt-tolerance",
            type=non_negative_float,
            help="s between a mask's stamp and its label's, nearest wins (default: --slop)",
        ),
        parser.add_argument(
            "--calibration", type=Path, help="rig file: register depth and thermal into the reference camera after sync"
        ),
        parser.add_argument(
            "--modalities",
            type=subset,
            default=canonical(MODALITIES),
            help="the sensors the robot has, as the node's parameter, e.g. rgb+depth (default: all three)",
        ),
        parser.add_argument("--slop", type=float, default=SyncConfig.slop, help="as the node's parameter"),
        parser.add_argument(
            "--modality-timeout",
            type=float,
            default=SyncConfig.modality_timeout,
            help="as the node's parameter",
        ),
        parser.add_argument("--max-delay", type=float, default=SyncConfig.max_delay, help="as the node's parameter"),
        parser.add_argument(
            "--readmit-frames", type=int, default=SyncConfig.readmit_frames, help="as the node's parameter"
        ),
        parser.add_argument(
            "--no-quality-gate",
            dest="quality_gate",
            action="store_false",
            help="use every image the sensors send, degraded or not (the node's quality.enabled:=false)",
        ),
    ]
    return tuple(action.option_strings[0] for action in added)


def bag_truth(args: argparse.Namespace) -> GroundTruth:
    """Ground truth from ``--gt-dir`` if given, else from ``--gt-topic`` in ``--bag``; a mask is
    scored against the label nearest its stamp within ``--gt-tolerance`` (default: the slop)."""
    from binseg_ros.bags.groundtruth import GroundTruth
    from binseg_ros.core.frame import seconds_to_ns

    tolerance = seconds_to_ns(args.slop if args.gt_tolerance is None else args.gt_tolerance)
    if args.gt_dir:
        return GroundTruth.from_folder(args.gt_dir, tolerance)
    return GroundTruth.from_topic(args.bag, args.gt_topic, tolerance)


def bag_rig(args: argparse.Namespace) -> Rig | None:
    """The rig of ``--calibration``, loaded and validated; None for already registered bags."""
    from binseg_ros.calibration.files import load_rig

    return load_rig(args.calibration) if args.calibration is not None else None


def bag_sync(args: argparse.Namespace) -> SyncConfig:
    """The synchroniser settings of ``--slop``, ``--modality-timeout``, ``--max-delay`` and
    ``--readmit-frames`` (checked here, as the node checks its parameters)."""
    from binseg_ros.core.sync import SyncConfig

    return SyncConfig(
        slop=args.slop,
        modality_timeout=args.modality_timeout,
        max_delay=args.max_delay,
        readmit_frames=args.readmit_frames,
    )


def bag_topics(given: Mapping[str, str], modalities: Subset = canonical(MODALITIES)) -> dict[str, str]:
    """Modality → image topic for ``modalities`` (``--modalities``): the node's defaults with
    ``--topics`` (``given``) on top.

    Raises:
        ConfigError: a key that is not a modality, or names one ``modalities`` leaves out (it would
            be ignored), or one topic for two modalities (one would be fed the other's images).
    """
    from binseg_ros.bags.make import DEFAULT_TOPICS

    for key in given:
        if key not in MODALITIES:
            raise ConfigError(f"--topics: unknown modality {key!r}; expected {', '.join(MODALITIES)}")
        if key not in modalities:
            raise ConfigError(f"--topics names {key}, which --modalities {subset_name(modalities)} leaves out")
    topics = {m: given.get(m, DEFAULT_TOPICS[m]) for m in modalities}
    readers: dict[str, str] = {}
    for modality, topic in topics.items():
        if topic in readers:
            raise ConfigError(f"--topics: {readers[topic]} and {modality} both read {topic}; give each its own topic")
        readers[topic] = modality
    return topics
