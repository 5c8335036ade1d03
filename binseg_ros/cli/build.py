"""``binseg build``: the terminal side of building an engine folder's TensorRT plans.

The work (checks, cache, builds, validation) is :mod:`binseg_ros.engines.tensorrt.loading`,
which prints nothing; this module shows it: a header line, a tqdm bar over the subsets, one
line per subset, and the exit code. TensorRT itself is imported only by ``prepare_build``, so
``binseg build`` on a machine without it ends with one line saying so (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from binseg_ros.cli.args import subset_list
from binseg_ros.engines.tensorrt.rules import PRECISIONS

if TYPE_CHECKING:
    from binseg_ros.cli.args import Verbs
    from binseg_ros.engines.manifest import Manifest
    from binseg_ros.modalities import Subset


def register(verbs: Verbs) -> None:
    """Add ``build``."""
    build = verbs.add_parser("build", help="TensorRT plans for every subset, cached per GPU and TensorRT version")
    build.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    build.add_argument("--precision", default="fp16", choices=PRECISIONS, help="fp16 | fp32 | int8 (Q/DQ graphs only)")
    build.add_argument("--cache", type=Path, help="plan cache folder (default: $BINSEG_PLAN_CACHE or ~/.cache)")
    build.add_argument("--subsets", type=subset_list, help="comma list like rgb+depth,thermal (default: all)")
    build.add_argument(
        "--plugin-library", default="auto", help="frequency-branch plugin: auto (build it here) | none | PATH"
    )
    build.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    """Build the plans of the engine folder ``--engine-dir`` (default: the installed model)."""
    from binseg_ros.engines.locate import open_engine_folder

    return run_build(open_engine_folder(args.engine_dir), args.precision, args.cache, args.subsets, args.plugin_library)


def run_build(
    manifest: Manifest,
    precision: str,
    cache_dir: Path | None,
    subsets: Sequence[Subset] | None,
    plugin_library: str | Path | None,
) -> int:
    """Build (or find in the cache) and validate the plans of an opened engine folder's subsets.

    Each plan is deserialized once, so a plan that TensorRT refuses is rebuilt here rather
    than at the node's start. Prints one line per subset: slot, form, cached/built, size,
    seconds. Returns 0 when every subset has a valid plan, 1 when one failed (its error
    printed); missing TensorRT, cuda-python or GPU raise BackendError before any work.
    """
    from tqdm import tqdm

    from binseg_ros.engines.tensorrt.loading import SubsetFailure, build_each, prepare_build
    from binseg_ros.modalities import subset_name

    job = prepare_build(manifest, precision, cache_dir, subsets, plugin_library)
    print(
        f"plans for {manifest.model} {manifest.version} at {job.precision} in {job.cache.root} "
        f"(TensorRT {job.tensorrt_version})"
    )
    failed = 0
    for outcome in tqdm(build_each(job), total=len(job.subsets), desc="build", unit="subset", file=sys.stderr):
        if isinstance(outcome, SubsetFailure):
            failed += 1
            tqdm.write(f"{subset_name(outcome.subset)}: FAILED: {outcome.error}", file=sys.stderr)
            continue
        tqdm.write(
            f"{outcome.slot:<28} {outcome.form:<7} {'built' if outcome.built else 'cached':<6} "
            f"{outcome.size / 1e6:7.1f} MB {outcome.seconds:7.1f} s"
        )
    return 1 if failed else 0
