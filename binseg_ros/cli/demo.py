"""``binseg demo``: ``segment_node`` on the shipped sample, then with thermal cut off.

The quickest look at the missing-sensor fallback on a fresh install; the run itself is
:func:`binseg_ros.ros.demo.run_demo`, imported only when the verb runs (it needs ROS 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from binseg_ros.cli.args import Verbs


def register(verbs: Verbs) -> None:
    """Add ``demo``."""
    demo = verbs.add_parser("demo", help="run segment_node on the shipped sample, then with thermal cut off")
    demo.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="where the masks are written")
    demo.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz")
    demo.add_argument("--passes", type=int, default=5, help="times each phase cycles through the sample")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo; its exit code is 0 when both phases sent masks."""
    from binseg_ros.ros.demo import run_demo

    return run_demo(args.engine_dir, args.out, args.rate, args.passes)
