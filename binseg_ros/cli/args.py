"""Argument types and flag groups that several ``binseg`` verbs share.

Values are checked and converted here, where they enter the package: a size becomes
``(height, width)``, a modality subset a :data:`~binseg_ros.modalities.Subset`, a form one of
:data:`~binseg_ros.forms.GRAPH_FORMS`, so the code past the parser trusts what it gets.
A type that fails raises ``argparse.ArgumentTypeError`` with the reason, which argparse
prints as ``binseg <verb>: error: argument --flag: <reason>`` (exit 2).

Verbs with modes (``evaluate``) need to know which flags the user typed, not only their
values (a default looks the same as a typed value): :func:`track_given` makes a parser note
every flag it sees, and :func:`given_flags` reads the note back.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from binseg_ros.backends.factory import BACKEND_NAMES
from binseg_ros.errors import BinsegError, ConfigError
from binseg_ros.forms import GRAPH_FORMS, GraphForm
from binseg_ros.modalities import Subset, parse_subset

if TYPE_CHECKING:
    from typing import TypeAlias

    from binseg_ros.bags.groundtruth import GroundTruth
    from binseg_ros.calibration.model import Rig
    from binseg_ros.core.sync import SyncConfig
    from binseg_ros.datasets import FolderLayout, LabelMap

    Verbs: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]  # what register() adds parsers to

"""The backends ``evaluate --bag`` and ``replay`` take, as their help has always said: the CPU
runtimes of :data:`~binseg_ros.backends.factory.BACKEND_NAMES` (``auto`` / ``tensorrt`` would
name a run by what it asked for rather than what ran, and build TensorRT plans mid-evaluation)."""

GIVEN = "given_flags"  # namespace attribute where tracked parsers note the flags they saw


def parse_size(text: str) -> tuple[int, int]:
    """``480x640`` → ``(480, 640)`` (height × width, as in the manifest)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like HEIGHTxWIDTH (e.g. 480x640), got {text!r}") from None
    return height, width


def positive_float(text: str) -> float:
    """A finite number > 0 (a duration, a rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def csv_list(text: str) -> list[str]:
    """``a, b,,c`` → ``["a", "b", "c"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def key_values(text: str) -> dict[str, str]:
    """``rgb=/cam/color,depth=/cam/depth`` → ``{"rgb": "/cam/color", "depth": "/cam/depth"}``."""
    pairs = {}
    for item in csv_list(text):
        key, _, value = item.partition("=")
        if not value:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE pairs, got {item!r}")
        pairs[key] = value
    return pairs


def subset_list(text: str) -> list[Subset]:
    """``rgb+depth,thermal`` → ``[("rgb", "depth"), ("thermal",)]``, each checked and in canonical order."""
    try:
        return [parse_subset(part) for part in csv_list(text)]
    except BinsegError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def form_list(text: str) -> list[GraphForm]:
    """``matmul,fft`` → ``["matmul", "fft"]``, each one of :data:`~binseg_ros.forms.GRAPH_FORMS`."""
    forms = csv_list(text)
    unknown = [form for form in forms if form not in GRAPH_FORMS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown form {unknown[0]!r}; expected a comma list of {', '.join(GRAPH_FORMS)}"
        )
    return [cast(GraphForm, form) for form in forms]


# --- which flags were typed --------------------------------------------------------------------


class _NotesGiven(argparse.Action):
    """Mixed into an argparse action: after storing, add the flag to the namespace's typed set."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        super().__call__(parser, namespace, values, option_string)
        flag = max(self.option_strings, key=len)
        setattr(namespace, GIVEN, getattr(namespace, GIVEN, frozenset()) | {flag})


class _StoreGiven(_NotesGiven, argparse._StoreAction):
    pass


class _StoreTrueGiven(_NotesGiven, argparse._StoreTrueAction):
    pass


def track_given(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser``'s plain and ``store_true`` flags (added after this call) note themselves."""
    parser.register("action", None, _StoreGiven)
    parser.register("action", "store", _StoreGiven)
    parser.register("action", "store_true", _StoreTrueGiven)
    return parser


def given_flags(args: argparse.Namespace) -> frozenset[str]:
    """The flags (long spelling) typed to a :func:`track_given` parser."""
    return frozenset(getattr(args, GIVEN, frozenset()))


def only_in_mode(given: frozenset[str], foreign: Sequence[str], mode: str, other: str) -> None:
    """Refuse flags of another mode: ``--x is for <mode>; <other>``.

    Raises:
        ConfigError: one of ``foreign`` was given.
    """
    wrong = [flag for flag in foreign if flag in given]
    if wrong:
        verb = "is" if len(wrong) == 1 else "are"
        raise ConfigError(f"{', '.join(wrong)} {verb} for {mode}; {other}")


# --- dataset folders (train, make-bag) ---------------------------------------------------------


def add_dataset_args(parser: argparse.ArgumentParser) -> None:
    """Folder layout and label mapping, for MM5 (the defaults) or a user's own data."""
    parser.add_argument(
        "--folders",
        type=csv_list,
        default=[],
        help="folder names, e.g. rgb=color,depth=depth,thermal=ir,labels=masks (default: MM5's)",
    )
    parser.add_argument("--depth-scale", type=float, help="metres per depth count (default 0.001: uint16 mm)")
    parser.add_argument("--suffix", help="image file suffix (default .png)")
    parser.add_argument(
        "--positive-labels",
        type=csv_list,
        default=[],
        help="label ids that are foreground, e.g. 3,7 (default: every id > 0)",
    )


def folder_layout(args: argparse.Namespace) -> FolderLayout:
    """The :class:`~binseg_ros.datasets.FolderLayout` of :func:`add_dataset_args`' flags."""
    from binseg_ros.datasets import FolderLayout

    mm5 = FolderLayout()
    names: dict[str, str] = {}
    for item in args.folders:
        key, _, value = item.partition("=")
        if key not in ("rgb", "depth", "thermal", "labels") or not value:
            raise ConfigError(f"--folders entry {item!r}: expected rgb=, depth=, thermal= or labels=NAME")
        names[key] = value
    return FolderLayout(
        rgb=names.get("rgb", mm5.rgb),
        depth=names.get("depth", mm5.depth),
        thermal=names.get("thermal", mm5.thermal),
        labels=names.get("labels", mm5.labels),
        depth_scale_m=mm5.depth_scale_m if args.depth_scale is None else args.depth_scale,
        suffix=mm5.suffix if args.suffix is None else args.suffix,
    )


def label_map(args: argparse.Namespace) -> LabelMap:
    """The :class:`~binseg_ros.datasets.LabelMap` of ``--positive-labels``."""
    from binseg_ros.datasets import LabelMap

    try:
        return LabelMap(frozenset(int(v) for v in args.positive_labels) or None)
    except ValueError as exc:
        raise ConfigError(f"--positive-labels must be integers, got {args.positive_labels}") from exc


# --- bag runs (evaluate --bag, replay) ---------------------------------------------------------


def add_bag_args(parser: argparse.ArgumentParser) -> None:
    """What a bag run needs beyond the bag: engines, backend, topics, ground truth, sync."""
    from binseg_ros.core.sync import SyncConfig
    from binseg_ros.forms import PORTABLE_FORMS

    parser.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    parser.add_argument(
        "--backend",
        default="onnxruntime",
        choices=BACKEND_NAMES,
        help="inference runtime, as the node's backend parameter",
    )
    parser.add_argument(
        "--form", default="matmul", choices=PORTABLE_FORMS, help="ONNX graph form: " + " | ".join(PORTABLE_FORMS)
    )
    parser.add_argument(
        "--topics", type=key_values, default={}, help="image topics, e.g. rgb=/cam/color (default /<m>/image)"
    )
    parser.add_argument("--gt-topic", default="/ground_truth/mask", help="ground-truth mask topic in the bag (mono8)")
    parser.add_argument("--gt-dir", type=Path, help="ground truth as PNGs named <stamp_ns>.png instead of a topic")
    parser.add_argument(
        "--gt-tolerance", type=float, help="s between a mask's stamp and its label's, nearest wins (default: --slop)"
    )
    parser.add_argument(
        "--calibration", type=Path, help="rig file: register depth and thermal into the reference camera after sync"
    )
    parser.add_argument("--slop", type=float, default=SyncConfig.slop, help="as the node's parameter")
    parser.add_argument(
        "--modality-timeout", type=float, default=SyncConfig.modality_timeout, help="as the node's parameter"
    )
    parser.add_argument("--max-delay", type=float, default=SyncConfig.max_delay, help="as the node's parameter")
    parser.add_argument("--readmit-frames", type=int, default=SyncConfig.readmit_frames, help="as the node's parameter")
    parser.add_argument(
        "--no-quality-gate",
        dest="quality_gate",
        action="store_false",
        help="use every image the sensors send, degraded or not (the node's quality.enabled:=false)",
    )


def bag_truth(args: argparse.Namespace) -> GroundTruth:
    """Ground truth from ``--gt-dir`` if given, else from ``--gt-topic`` in ``--bag``; a mask is
    scored against the label nearest its stamp within ``--gt-tolerance`` (default: the slop)."""
    from binseg_ros.bags.groundtruth import GroundTruth
    from binseg_ros.core.frame import seconds_to_ns

    tolerance = seconds_to_ns(args.slop if args.gt_tolerance is None else args.gt_tolerance)
    if tolerance < 0:
        raise ConfigError(f"--gt-tolerance must be >= 0 s, got {args.gt_tolerance}")
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


def bag_topics(args: argparse.Namespace) -> dict[str, str]:
    """Modality → image topic: the node's defaults with ``--topics`` on top."""
    from binseg_ros.bags.make import DEFAULT_TOPICS

    return {**DEFAULT_TOPICS, **args.topics}
