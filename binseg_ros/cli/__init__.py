"""``binseg``: one entry point, one verb per job (export, profile, bench, ...).

Each verb group lives in its own module with a ``register(subparsers)`` that adds its parser
and sets ``func``; a command function parses, calls one function of the package, and prints
what it returns, so the work stays testable without a shell and the CLI stays thin. Modules
import their heavy dependencies (torch, ROS, TensorRT) inside the command, so ``binseg
--help`` and argument errors answer at once and a verb never needs another verb's stack.

Errors a user can cause end as exit code 2 with one line on stderr: argparse's own (a bad
flag or value, under its usage line) and every :class:`~binseg_ros.errors.BinsegError` a
command raises (``binseg <verb>: error: <message>``). Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from binseg_ros.cli import bags, bench, build, calibrate, demo, evaluate, gate, models, train
from binseg_ros.errors import BinsegError

DESCRIPTION = "binseg: multimodal binary segmentation for ROS 2 robots, one verb per job."
VERB_MODULES = (models, train, evaluate, bags, demo, build, bench, calibrate, gate)  # in `binseg --help` order


def build_parser() -> argparse.ArgumentParser:
    """The ``binseg`` parser with every verb registered."""
    parser = argparse.ArgumentParser(prog="binseg", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in VERB_MODULES:
        module.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; returns the exit code (2 for any error the user caused, argparse's included)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad flag (2, message already printed)
        return exc.code if isinstance(exc.code, int) else 2
    # Our own progress at INFO; other libraries (onnxscript's optimizer is chatty) only warn.
    level = logging.DEBUG if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for name in ("binseg", "binseg_ros"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args))
    except BinsegError as exc:
        print(f"binseg {args.verb}: error: {exc}", file=sys.stderr)
        return 2
