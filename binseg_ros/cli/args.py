"""Argument types and flag groups that several ``binseg`` verbs share.

Values are checked and converted here, where they enter the package: a size becomes
``(height, width)``, a modality subset a :data:`~binseg_ros.modalities.Subset`, a form one of
:data:`~binseg_ros.forms.GRAPH_FORMS`, so the code past the parser trusts what it gets.
A type that fails raises ``argparse.ArgumentTypeError`` with the reason, which argparse
prints as ``binseg <verb>: error: argument --flag: <reason>`` (exit 2).

The flags of the bag runs (``evaluate --bag``, ``replay``) are in :mod:`binseg_ros.cli.bag_args`.

Verbs with modes (``evaluate``) need to know which flags the user typed, not only their
values (a default looks the same as a typed value): :func:`track_given` makes a parser note
every flag it sees, and :func:`given_flags` reads the note back.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from binseg_ros.errors import BinsegError, ConfigError
from binseg_ros.forms import GRAPH_FORMS, GraphForm
from binseg_ros.modalities import Subset, parse_subset

if TYPE_CHECKING:
    from typing import TypeAlias

    from binseg_ros.datasets import FolderLayout, LabelMap

    Verbs: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]  # what register() adds parsers to

GIVEN = "given_flags"  # namespace attribute where tracked parsers note the flags they saw


def parse_size(text: str) -> tuple[int, int]:
    """``480x640`` → ``(480, 640)`` (height × width, as in the manifest)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like HEIGHTxWIDTH (e.g. 480x640), got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"size must be at least 1x1, got {text!r}")
    return height, width


def _finite_float(text: str, bound: str, within: Callable[[float], bool]) -> float:
    """``text`` as a finite number ``within`` its ``bound`` (``> 0``): nan and inf would pass a
    comparison or two and then fail deep in the run, as an integer conversion or a timeout."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and within(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (a duration, a rate)."""
    return _finite_float(text, "> 0", lambda value: value > 0)


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a tolerance or delay where 0 means none)."""
    return _finite_float(text, ">= 0", lambda value: value >= 0)


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


def subset(text: str) -> Subset:
    """``depth+rgb`` → ``("rgb", "depth")``: one subset, spelled as the node's ``modalities`` parameter."""
    try:
        return parse_subset(text)
    except BinsegError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def subset_list(text: str) -> list[Subset]:
    """``rgb+depth,thermal`` → ``[("rgb", "depth"), ("thermal",)]``, each checked and in canonical order."""
    return [subset(part) for part in csv_list(text)]


def form_list(text: str) -> list[GraphForm]:
    """``matmul,fft`` → ``["matmul", "fft"]``, each one of :data:`~binseg_ros.forms.GRAPH_FORMS`."""
    forms = csv_list(text)
    unknown = [form for form in forms if form not in GRAPH_FORMS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown form {unknown[0]!r}; expected a comma list of {', '.join(GRAPH_FORMS)}"
        )
    return [cast(GraphForm, form) for form in forms]


def check_output_folder(path: Path) -> None:
    """Refuse an ``--out`` that cannot be written, before a run that ends by writing into it, so
    it fails now rather than after the whole run. Nothing is created: a run refused later (a
    damaged bag) leaves nothing behind. The folder, or its nearest parent that exists (where
    the run will make it), must be a folder that takes a new file.

    Raises:
        ConfigError: naming the folder and why it cannot be written.
    """
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        raise ConfigError(f"--out {path}: cannot write there ({existing} is not a folder)")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write there ({exc.strerror or exc})") from exc


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


class _StoreFalseGiven(_NotesGiven, argparse._StoreFalseAction):
    pass


def track_given(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser``'s plain, ``store_true`` and ``store_false`` flags (added after this call) note themselves."""
    parser.register("action", None, _StoreGiven)
    parser.register("action", "store", _StoreGiven)
    parser.register("action", "store_true", _StoreTrueGiven)
    parser.register("action", "store_false", _StoreFalseGiven)
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
