"""``binseg build``: the terminal side of building an engine folder's TensorRT plans.

The work (checks, cache, builds, validation) is :mod:`binseg_ros.engines.tensorrt.loading`,
which prints nothing; this module shows it: a header line, a tqdm bar over the subsets, one
line per subset, and the exit code. TensorRT itself is imported only by ``prepare_build``, so
``binseg build`` on a machine without it (or without a GPU and ``--compute-capability``) ends
with one line saying what to do (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from binseg_ros.cli.args import subset_list
from binseg_ros.engines.tensorrt.rules import PRECISIONS
from binseg_ros.engines.tensorrt.targets import require_compute_capability
from binseg_ros.errors import BackendError

if TYPE_CHECKING:
    from binseg_ros.cli.args import Verbs
    from binseg_ros.engines.manifest import Manifest
    from binseg_ros.modalities import Subset


def register(verbs: Verbs) -> None:
    """Add ``build``."""
    build = verbs.add_parser(
        "build", help="TensorRT plans for every subset, cached per GPU (or compute capability) and TensorRT version"
    )
    build.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    build.add_argument("--precision", default="fp16", choices=PRECISIONS, help="fp16 | fp32 | int8 (Q/DQ graphs only)")
    build.add_argument("--cache", type=Path, help="plan cache folder (default: $BINSEG_PLAN_CACHE or ~/.cache)")
    build.add_argument("--subsets", type=subset_list, help="comma list like rgb+depth,thermal (default: all)")
    build.add_argument(
        "--plugin-library", default="auto", help="frequency-branch plugin: auto (build it here) | none | PATH"
    )
    build.add_argument(
        "--compute-capability",
        type=_compute_capability,
        help="build ahead of time for this compute capability, like 8.9, without a GPU (TensorRT-RTX only)",
    )
    build.set_defaults(func=cmd_build)


def _compute_capability(text: str) -> str:
    """argparse type: the capability's form, checked where it comes in."""
    try:
        return require_compute_capability(text)
    except BackendError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def cmd_build(args: argparse.Namespace) -> int:
    """Build the plans of the engine folder ``--engine-dir`` (default: the installed model)."""
    from binseg_ros.engines.locate import open_engine_folder

    manifest = open_engine_folder(args.engine_dir)
    return run_build(manifest, args.precision, args.cache, args.subsets, args.plugin_library, args.compute_capability)


def run_build(
    manifest: Manifest,
    precision: str,
    cache_dir: Path | None,
    subsets: Sequence[Subset] | None,
    plugin_library: str | Path | None,
    compute_capability: str | None = None,
) -> int:
    """Build (or find in the cache) and validate the plans of an opened engine folder's subsets.

    On this machine's GPU each plan is deserialized once, so a plan that TensorRT refuses is
    rebuilt here rather than at the node's start; with ``compute_capability`` (TensorRT-RTX)
    the plans are built ahead of time for that capability, no GPU needed. Prints one line per
    subset: slot, form, cached/built, size, seconds. Returns 0 when every subset has a plan,
    1 when one failed (its error printed); missing TensorRT, cuda-python or GPU, or a target
    the TensorRT cannot build for, raise BackendError before any work.
    """
    from tqdm import tqdm

    from binseg_ros.engines.tensorrt.loading import SubsetFailure, build_each, prepare_build
    from binseg_ros.modalities import subset_name

    job = prepare_build(manifest, precision, cache_dir, subsets, plugin_library, compute_capability)
    print(f"plans for {manifest.model} {manifest.version} at {job.precision} in {job.cache.root} ({job.target})")
    failed = 0
    for outcome in tqdm(build_each(job), total=len(job.subsets), desc="build", unit="subset", file=sys.stderr):
        if isinstance(outcome, SubsetFailure):
            failed += 1
            tqdm.write(f"{subset_name(outcome.subset)}: FAILED: {outcome.error}", file=sys.stderr)
            continue
        tqdm.write(
            f"{outcome.slot:<30} {outcome.form:<7} {'built' if outcome.built else 'cached':<6} "
            f"{outcome.size / 1e6:7.1f} MB {outcome.seconds:7.1f} s"
        )
    return 1 if failed else 0
