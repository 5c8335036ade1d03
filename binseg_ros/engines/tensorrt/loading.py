"""A subset's TensorRT engine: its plan from the cache when it was built for this target, else
built here and stored, then deserialized (``binseg build`` and the backend's first run).

The target (this machine's GPU, or a compute capability ahead of time) and the TensorRT
flavour are checked once, by :func:`~binseg_ros.engines.tensorrt.imports.check_target`;
:mod:`binseg_ros.engines.tensorrt.plan_cache` holds the rules of reuse. A plan TensorRT
refuses although its key matched is rebuilt once. Nothing here prints: :func:`build_each`
reports each subset as a value and the CLI decides how to show it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from binseg_ros.engines.manifest import Manifest
from binseg_ros.engines.tensorrt.builder import build_plan
from binseg_ros.engines.tensorrt.imports import check_target, trt_logger
from binseg_ros.engines.tensorrt.plan_cache import PlanCache, PlanKey, default_plan_dir, model_digest, slot_name
from binseg_ros.engines.tensorrt.plugin_library import load_plugin_library, resolve_plugin_library
from binseg_ros.engines.tensorrt.rules import KERNEL_FORM, Precision, choose_form, require_precision
from binseg_ros.engines.tensorrt.targets import BuildTarget
from binseg_ros.errors import BackendError, BinsegError
from binseg_ros.modalities import Subset, subset_name

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanResult:
    """What :func:`ensure_plan` did for one subset."""

    slot: str
    form: str
    plan: bytes
    built: bool  # False: loaded from the cache


def _verify_sources(manifest: Manifest, subset: Subset, form: str) -> None:
    """Refuse to build from a graph or tensors file that differs from the manifest's sha256s:
    the plan would be cached under the key of bytes it was not built from."""
    manifest.verify([manifest.entry(subset).onnx[form], manifest.tensors])


def ensure_plan(
    manifest: Manifest,
    subset: Subset,
    cache: PlanCache,
    target: BuildTarget,
    precision: Precision,
    plugin_sha256: str | None,
    progress: bool,
) -> PlanResult:
    """A subset's plan from the cache when it was built for ``target``, else built and stored.

    The graph is :func:`~binseg_ros.engines.tensorrt.rules.choose_form`'s (the ``kernel``
    graph with the plugin library ``plugin_sha256`` loaded, the fp16-typed graph for fp16 on a
    strongly typed flavour, else ``matmul``); the choice and its reason are logged. The slot is
    ``<onnx file stem>.<precision>``; a ``kernel`` plan's key names the plugin library too.

    Raises:
        BackendError: a graph the flavour cannot take at this precision (before parsing), or
            a failed build.
        ManifestError: no usable graph, or a graph or tensors file that changed.
    """
    form, reason = choose_form(manifest, subset, target.flavour, precision, plugin_sha256 is not None)
    LOG.info("%s: %s graph (%s)", subset_name(subset), form, reason)
    onnx_path = manifest.onnx_path(subset, form)
    slot = slot_name(onnx_path.stem, precision)
    plugin = plugin_sha256 if form == KERNEL_FORM else None  # only the kernel graphs have plugin nodes
    key = PlanKey.for_target(target, precision, model_digest(manifest, subset, form), plugin)
    plan = cache.load(slot, key)
    if plan is not None:
        return PlanResult(slot, form, plan, built=False)
    _verify_sources(manifest, subset, form)
    LOG.warning("building TensorRT plan %s for %s (first use of this target: this takes a while)", slot, target)
    timing_cache = cache.timing_cache_path(key) if target.flavour.keeps_timing_cache else None
    plan = build_plan(onnx_path, target, precision, timing_cache, progress=progress)
    cache.store(slot, key, plan)
    return PlanResult(slot, form, plan, built=True)


def deserialize_engine(runtime: Any, plan: bytes) -> Any | None:
    """``runtime.deserialize_cuda_engine(plan)``, with an exception counted as a refusal (None)."""
    try:
        return runtime.deserialize_cuda_engine(plan)
    except (RuntimeError, TypeError, ValueError) as exc:
        LOG.warning("TensorRT raised while deserializing a plan: %s", exc)
        return None


def load_engine(
    runtime: Any,
    manifest: Manifest,
    subset: Subset,
    cache: PlanCache,
    target: BuildTarget,
    precision: Precision = "fp16",
    plugin_sha256: str | None = None,
    progress: bool = False,
) -> tuple[PlanResult, Any]:
    """The subset's deserialized ``ICudaEngine``, rebuilding once a plan TensorRT refuses.

    The key check cannot see everything a plan depends on (a driver update): TensorRT then
    returns None, the slot is dropped and built again; a fresh plan that is refused too is a
    BackendError.
    """
    result = ensure_plan(manifest, subset, cache, target, precision, plugin_sha256, progress)
    engine = deserialize_engine(runtime, result.plan)
    if engine is None and not result.built:
        cache.invalidate(result.slot, "TensorRT refused to deserialize it")
        result = ensure_plan(manifest, subset, cache, target, precision, plugin_sha256, progress)
        engine = deserialize_engine(runtime, result.plan)
    if engine is None:
        raise BackendError(
            f"TensorRT cannot deserialize plan {result.slot} that was just built here (see the TensorRT log above)"
        )
    return result, engine


# --- every chosen subset of a folder (`binseg build`) -----------------------------------------


@dataclass(frozen=True)
class BuildJob:
    """What :func:`build_each` works on: checked before any plan is built or loaded."""

    manifest: Manifest
    subsets: tuple[Subset, ...]
    precision: Precision
    cache: PlanCache
    plugin_library: Path | None  # resolved, not loaded yet
    target: BuildTarget
    runtime: Any  # the trt.Runtime that validates each plan by deserializing it; None ahead of time (no GPU)


@dataclass(frozen=True)
class SubsetPlan:
    """A subset whose plan is in the cache and deserializes."""

    subset: Subset
    slot: str
    form: str
    built: bool  # False: found in the cache
    size: int  # bytes of the plan
    seconds: float


@dataclass(frozen=True)
class SubsetFailure:
    """A subset without a valid plan, and why."""

    subset: Subset
    error: BinsegError


def prepare_build(
    manifest: Manifest,
    precision: str,
    cache_dir: Path | None,
    subsets: Sequence[Subset] | None,
    plugin_library: str | Path | None,
    compute_capability: str | None = None,
) -> BuildJob:
    """Check everything ``binseg build`` needs before any work: the subsets (default: all of
    the folder's), the precision, TensorRT and the target (cuda-python and a GPU, or with
    ``compute_capability`` a flavour that builds ahead of time); resolve the plan folder
    (default :func:`~binseg_ros.engines.tensorrt.plan_cache.default_plan_dir`) and the plugin
    library setting (``auto`` may build the library here).

    Raises:
        ManifestError: an unknown subset.
        BackendError: an unknown precision, missing TensorRT, cuda-python or GPU, or a target
            this TensorRT cannot build for.
    """
    chosen = [manifest.entry(s).subset for s in subsets] if subsets else [e.subset for e in manifest.subsets.values()]
    checked = require_precision(precision)
    trt, target = check_target(checked, compute_capability)
    cache = PlanCache(Path(cache_dir) if cache_dir is not None else default_plan_dir(manifest))
    library = resolve_plugin_library(plugin_library, cache.root, target.flavour)
    runtime = None if target.ahead_of_time else trt.Runtime(trt_logger())
    return BuildJob(manifest, tuple(chosen), checked, cache, library, target, runtime)


def build_each(job: BuildJob) -> Iterator[SubsetPlan | SubsetFailure]:
    """Build (or find in the cache) and validate the plan of each of the job's subsets, in order.

    On this machine's GPU each plan is deserialized once, so a plan that TensorRT refuses is
    rebuilt here rather than at the node's start; a plan built ahead of time is first
    deserialized on its target. The plugin library is loaded once, first; if it cannot be,
    every subset fails with that error. A subset's error does not stop the next subset.
    """
    plugin_error: BinsegError | None = None
    plugin_sha256: str | None = None
    if job.plugin_library is not None:
        try:
            plugin_sha256 = load_plugin_library(job.plugin_library)
        except BinsegError as error:
            plugin_error = error
    for subset in job.subsets:
        if plugin_error is not None:
            yield SubsetFailure(subset, plugin_error)
            continue
        start = time.perf_counter()
        try:
            if job.runtime is None:
                result = ensure_plan(job.manifest, subset, job.cache, job.target, job.precision, plugin_sha256, True)
            else:
                result = load_engine(  # the engine itself is dropped here: deserializing was the check
                    job.runtime, job.manifest, subset, job.cache, job.target, job.precision, plugin_sha256, True
                )[0]
        except BinsegError as error:
            yield SubsetFailure(subset, error)
            continue
        yield SubsetPlan(subset, result.slot, result.form, result.built, len(result.plan), time.perf_counter() - start)
