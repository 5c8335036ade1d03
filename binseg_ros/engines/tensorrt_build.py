"""TensorRT plans built on the target from the engine folder's ONNX graphs (``binseg build``).

A plan is specific to the GPU, its compute capability and the TensorRT version, so it is
built where it runs and kept in a :class:`~binseg_ros.engines.plans.PlanCache` under the key
:func:`target_key` computes; a later start on the same target loads it, anything else
rebuilds it (see :mod:`binseg_ros.engines.plans` for the rules).

TensorRT and cuda-python are imported only in the functions that need them
(:mod:`binseg_ros.engines.gpu_runtime`), so the checks that need no TensorRT (precision rules,
Q/DQ detection, form choice) run on any machine.

TensorRT API generations (written against the documented Python API of 10.x, 10.3 being
JetPack 6, and of 11.x):

- **10.x** builds *weakly typed* networks: the ONNX graph is fp32 and the ``FP16`` / ``INT8``
  builder flags let TensorRT pick lower-precision kernels per layer.
- **11.x** removed those flags and weak typing: every network is *strongly typed*, and a
  layer runs in the type the ONNX graph gives its tensors. An fp16 engine then needs an
  fp16-typed ONNX graph (e.g. converted with NVIDIA ModelOpt AutoCast), which this release
  does not export, so on TensorRT ≥ 11 only ``fp32`` (and ``int8`` from Q/DQ graphs) is built.
- **int8** needs explicit quantization (QuantizeLinear/DequantizeLinear nodes in the graph):
  TensorRT 10 deprecates implicit calibration and TensorRT 11 removes it, so this project has
  no calibrator. The exported graphs carry no Q/DQ nodes, so int8 is refused before TensorRT
  is touched (:func:`check_precision`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from binseg_ros.engines.gpu_runtime import (
    cuda_device_count,
    device_identity,
    import_cudart,
    import_tensorrt,
    tensorrt_major,
    trt_logger,
)
from binseg_ros.engines.manifest import Manifest
from binseg_ros.engines.plans import PlanCache, PlanKey, model_digest, require_precision, slot_name, write_atomic
from binseg_ros.engines.plugin_library import load_plugin_library, resolve_plugin_library
from binseg_ros.errors import BackendError, BinsegError, ManifestError
from binseg_ros.hashing import sha256_file
from binseg_ros.kernels.plugin import PLUGIN_NAME, PLUGIN_NAMESPACE
from binseg_ros.modalities import Subset, subset_name

LOG = logging.getLogger(__name__)

DEFAULT_WORKSPACE_BYTES = 1 << 30
"""Builder scratch limit (1 GiB): plenty for these graphs, and safe on an 8 GiB Orin whose GPU
shares memory with the CPU."""

PLAN_CACHE_ENV = "BINSEG_PLAN_CACHE"
KERNEL_FORM = "kernel"  # frequency branch as plugin nodes running the project's CUDA kernels
PORTABLE_FORM = "matmul"  # frequency branch as DFT matmuls: no plugin, builds on every TensorRT
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
MIN_TENSORRT_MAJOR = 10
STRONGLY_TYPED_MAJOR = 11


# --- the rules that need no TensorRT ----------------------------------------------------------


def quantization_nodes(onnx_path: str | Path) -> int:
    """How many QuantizeLinear / DequantizeLinear nodes the graph has (subgraphs and functions too).

    Reads only the graph file: its external data (``tensors.bin``) is not loaded.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)

    def count(graph: onnx.GraphProto) -> int:
        total = 0
        for node in graph.node:
            total += node.op_type in QDQ_OPS
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    total += count(attribute.g)
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    total += sum(count(g) for g in attribute.graphs)
        return total

    functions = sum(node.op_type in QDQ_OPS for function in model.functions for node in function.node)
    return count(model.graph) + functions


def check_precision(onnx_path: str | Path, precision: str) -> None:
    """Refuse a precision the graph cannot be built at, before TensorRT is involved.

    Raises:
        BackendError: an unknown precision, or int8 for a graph without Q/DQ nodes.
    """
    require_precision(precision)
    if precision == "int8" and quantization_nodes(onnx_path) == 0:
        raise BackendError(
            f"{onnx_path}: int8 needs an explicitly quantized graph (QuantizeLinear/DequantizeLinear "
            "nodes) and this one has none. TensorRT 10 deprecates implicit INT8 calibration and "
            "TensorRT 11 removes it, so there is no calibrator here, and `binseg export` writes no "
            "Q/DQ graphs; use precision fp16 or fp32"
        )


def builder_settings(major: int, precision: str) -> tuple[bool, tuple[str, ...]]:
    """``(strongly_typed, BuilderFlag names to set)`` for a precision on a TensorRT major version.

    TensorRT 10 (weakly typed): fp16 -> ``FP16``, int8 -> ``INT8`` (its Q/DQ scales decide
    what is quantized), fp32 -> none. TensorRT ≥ 11 (strongly typed, those flags removed):
    the graph's own types decide, so fp32 and int8 (Q/DQ) need no flags, and fp16 is refused
    because it would need an fp16-typed ONNX graph, which this release does not export.

    Raises:
        BackendError: a TensorRT older than 10, or fp16 on TensorRT ≥ 11.
    """
    if major < MIN_TENSORRT_MAJOR:
        raise BackendError(f"TensorRT {major}.x is too old: the tensorrt backend needs 10.x (10.3 = JetPack 6) or newer")
    if major >= STRONGLY_TYPED_MAJOR:
        if precision == "fp16":
            raise BackendError(
                f"precision fp16 is not available on TensorRT {major}: it builds strongly typed networks "
                "only (the FP16 builder flag is gone), so fp16 needs an fp16-typed ONNX graph, which this "
                "release does not export; use precision fp32"
            )
        return True, ()
    return False, {"fp16": ("FP16",), "int8": ("INT8",), "fp32": ()}[precision]


def check_target(precision: str) -> Any:
    """The ``tensorrt`` module, once everything a build or an engine on this machine needs is
    there: a known precision, TensorRT ≥ 10, cuda-python, a visible GPU, and a precision this
    TensorRT can build (not fp16 on ≥ 11).

    Raises:
        BackendError: naming the first missing piece, before any work is done.
    """
    require_precision(precision)
    trt = import_tensorrt()
    import_cudart()
    if cuda_device_count() == 0:
        raise BackendError(
            "no CUDA GPU is visible to this process: TensorRT plans are built and run on the GPU itself; "
            "use backend onnxruntime"
        )
    builder_settings(tensorrt_major(trt.__version__), precision)
    return trt


def choose_form(manifest: Manifest, subset: str | Subset, plugin_loaded: bool) -> tuple[str, str]:
    """``(form, reason)``: the plugin (``kernel``) graph where it can be built, else ``matmul``.

    Raises:
        ManifestError: the subset is missing, or it has only a kernel graph and no plugin is loaded.
    """
    entry = manifest.entry(subset)
    if KERNEL_FORM in entry.onnx and plugin_loaded:
        return KERNEL_FORM, "plugin library loaded: the frequency branch runs the project's CUDA kernels"
    if PORTABLE_FORM not in entry.onnx:
        raise ManifestError(
            f"{manifest.path}: subset {subset_name(entry.subset)!r} has no {PORTABLE_FORM!r} graph and "
            f"{'no plugin library was given' if KERNEL_FORM in entry.onnx else 'no kernel graph'}; "
            f"it has {', '.join(entry.onnx)}"
        )
    if KERNEL_FORM in entry.onnx:
        return PORTABLE_FORM, "no plugin library loaded, so the plugin-free DFT-as-matmul graph"
    return PORTABLE_FORM, "the engine folder has no kernel (plugin) graph"


def default_plan_dir(manifest: Manifest) -> Path:
    """``$BINSEG_PLAN_CACHE/<model>``, default ``~/.cache/binseg_ros/plans/<model>``."""
    root = Path(os.environ.get(PLAN_CACHE_ENV, Path.home() / ".cache" / "binseg_ros" / "plans"))
    return root / manifest.model


# --- TensorRT objects -------------------------------------------------------------------------


def target_key(onnx_digest: str, precision: str) -> PlanKey:
    """The :class:`PlanKey` of this process's CUDA device and TensorRT for one graph and precision."""
    name, major, minor = device_identity()
    return PlanKey(name, f"{major}.{minor}", str(import_tensorrt().__version__), precision, onnx_digest)


def _progress_monitor(trt: Any, label: str) -> Any:
    """An ``IProgressMonitor`` drawing one tqdm bar per builder phase (nested phases indented).

    TensorRT calls it from its own threads, so bar updates hold a lock; an exception must not
    escape into TensorRT, so each callback logs and carries on.
    """
    from tqdm import tqdm

    class TqdmProgressMonitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._bars: dict[str, Any] = {}
            self._depth: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            try:
                with self._lock:
                    depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
                    self._depth[phase_name] = depth
                    self._bars[phase_name] = tqdm(
                        total=num_steps, desc=f"{label} {'  ' * depth}{phase_name}", unit="step",
                        position=depth + 1, leave=False, file=sys.stderr,
                    )
            except Exception:  # noqa: BLE001 - never raise into TensorRT
                LOG.debug("progress bar failed", exc_info=True)

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                with self._lock:
                    bar = self._bars.get(phase_name)
                    if bar is not None:
                        bar.update(step + 1 - bar.n)  # steps are numbered from 0
            except Exception:  # noqa: BLE001
                LOG.debug("progress bar failed", exc_info=True)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            try:
                with self._lock:
                    self._depth.pop(phase_name, None)
                    bar = self._bars.pop(phase_name, None)
                    if bar is not None:
                        bar.close()
            except Exception:  # noqa: BLE001
                LOG.debug("progress bar failed", exc_info=True)

        def close(self) -> None:
            with self._lock:
                for bar in self._bars.values():
                    bar.close()
                self._bars.clear()

    return TqdmProgressMonitor()


# --- the timing cache: read at the start of a build, merged and written back at the end ---------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing) for the duration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _attach_timing_cache(config: Any, path: Path | None) -> None:
    """Give the build the timing cache saved at ``path`` (an empty one if missing or unreadable)."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    try:
        cache = config.create_timing_cache(data)
    except Exception as exc:  # noqa: BLE001 - a damaged file must not stop the build
        LOG.warning("timing cache %s is unreadable (%s): starting an empty one", path, exc)
        cache = None
    if cache is None:
        cache = config.create_timing_cache(b"")
    # The file is per (GPU, compute capability, TensorRT version) (PlanCache.timing_cache_path),
    # so a header mismatch means a damaged or foreign file: do not accept its timings.
    if config.set_timing_cache(cache, False) is False:
        LOG.warning("timing cache %s does not match this device: starting an empty one", path)
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _save_timing_cache(config: Any, path: Path) -> None:
    """Merge what another build saved meanwhile into ours, then replace the file atomically.

    The read-merge-write runs under a lock on ``<path>.lock`` so two builds finishing at the
    same time (``binseg build`` beside a starting node) both keep their new timings.
    """
    ours = config.get_timing_cache()
    if ours is None:
        return
    with _locked(path.with_name(path.name + ".lock")):
        if path.is_file():
            theirs = config.create_timing_cache(path.read_bytes())
            if theirs is not None and not ours.combine(theirs, False):
                LOG.debug("timing cache %s could not be merged; overwriting it with this build's", path)
        write_atomic(path, bytes(memoryview(ours.serialize())))


# --- building ---------------------------------------------------------------------------------


def build_plan(
    onnx_path: str | Path,
    precision: str = "fp16",
    timing_cache_path: str | Path | None = None,
    plugin_library: str | Path | None = None,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    progress: bool = True,
) -> bytes:
    """Build a serialized TensorRT engine (plan) from one ONNX graph on this machine's GPU.

    ``precision``: ``fp16`` (default; TensorRT 10.x only, see :func:`builder_settings`),
    ``fp32`` (TF32 off, so it matches ONNX Runtime closely), or ``int8`` (graphs with Q/DQ
    nodes only, checked before TensorRT is imported). The timing cache at
    ``timing_cache_path`` is loaded before and merged back after the build. A
    ``plugin_library`` is loaded first so the parser finds the creator of the plugin nodes.

    Raises:
        BackendError: TensorRT or cuda-python missing, precision not possible, parser errors
            (all of them, naming the file), or a failed build.
    """
    onnx_path = Path(onnx_path)
    check_precision(onnx_path, precision)
    trt = import_tensorrt()
    strongly_typed, flag_names = builder_settings(tensorrt_major(trt.__version__), precision)
    if plugin_library is not None:
        load_plugin_library(plugin_library)
    cache_path = Path(timing_cache_path) if timing_cache_path is not None else None

    logger = trt_logger()
    builder = trt.Builder(logger)
    # TensorRT 10: 0 = weakly typed (STRONGLY_TYPED would forbid the FP16/INT8 flags).
    # TensorRT ≥ 11: every network is strongly typed; the STRONGLY_TYPED flag is deprecated
    # there and ignored, so 0 is the documented way to create one.
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    # parse_from_file, not parse(bytes): it resolves tensors.bin relative to the graph file.
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        hint = ""
        if any("Plugin not found" in e for e in errors):
            hint = f"\n  (the {PLUGIN_NAMESPACE}::{PLUGIN_NAME} plugin creator is not registered: load the plugin library)"
        raise BackendError(
            f"TensorRT could not parse {onnx_path} ({len(errors)} error(s)):\n  "
            + "\n  ".join(errors or ["no parser error recorded; see the TensorRT log above"])
            + hint
        )

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    for name in flag_names:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default: fp32 should mean fp32 inner products
    _attach_timing_cache(config, cache_path)
    monitor = _progress_monitor(trt, onnx_path.name) if progress else None
    if monitor is not None:
        config.progress_monitor = monitor

    start = time.perf_counter()
    try:
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BackendError(f"TensorRT failed to build {onnx_path} at {precision} (see the TensorRT log above)")
        if cache_path is not None:
            _save_timing_cache(config, cache_path)
        data = bytes(memoryview(plan))
    finally:
        # The monitor must outlive every TensorRT object that uses it.
        del config, parser, network, builder
        if monitor is not None:
            monitor.close()
    LOG.info(
        "built %s at %s%s in %.1f s (%.1f MB)", onnx_path.name, precision,
        " (strongly typed)" if strongly_typed else "", time.perf_counter() - start, len(data) / 1e6,
    )
    return data


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
    entry = manifest.entry(subset)
    for ref in (entry.onnx[form], manifest.tensors):
        path = manifest.root / ref.file
        if not path.is_file() or sha256_file(path) != ref.sha256:
            raise ManifestError(f"{manifest.path}: {ref.file} is missing or does not match its recorded sha256")


def ensure_plan(
    manifest: Manifest,
    subset: str | Subset,
    cache: PlanCache,
    precision: str,
    plugin_library: str | Path | None,
    progress: bool,
) -> PlanResult:
    """A subset's plan from the cache when it was built for this target, else built and stored.

    The ``kernel`` graph (plugin nodes) is used when the folder has one and a plugin library
    is given (and loads), else the plugin-free ``matmul`` graph; the choice and its reason
    are logged. The slot is ``<onnx file stem>.<precision>``.
    """
    subset = manifest.entry(subset).subset
    if plugin_library is not None:
        load_plugin_library(plugin_library)
    form, reason = choose_form(manifest, subset, plugin_library is not None)
    LOG.info("%s: %s graph (%s)", subset_name(subset), form, reason)
    onnx_path = manifest.onnx_path(subset, form)
    check_precision(onnx_path, precision)
    slot = slot_name(onnx_path.stem, precision)
    key = target_key(model_digest(manifest, subset, form), precision)
    plan = cache.load(slot, key)
    if plan is not None:
        return PlanResult(slot, form, plan, built=False)
    _verify_sources(manifest, subset, form)
    LOG.warning("building TensorRT plan %s for %s (first use on this GPU/TensorRT: this takes a while)", slot, key.gpu_name)
    plan = build_plan(
        onnx_path, precision, cache.timing_cache_path(key),
        plugin_library if form == KERNEL_FORM else None, progress=progress,
    )
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
    subset: str | Subset,
    cache: PlanCache,
    precision: str = "fp16",
    plugin_library: str | Path | None = None,
    progress: bool = False,
) -> tuple[PlanResult, Any]:
    """The subset's deserialized ``ICudaEngine``, rebuilding once a plan TensorRT refuses.

    The key check cannot see everything a plan depends on (a driver update, a plugin
    library rebuilt with another layout): TensorRT then returns None, the slot is dropped
    and built again; a fresh plan that is refused too is a BackendError.
    """
    result = ensure_plan(manifest, subset, cache, precision, plugin_library, progress)
    engine = deserialize_engine(runtime, result.plan)
    if engine is None and not result.built:
        cache.invalidate(result.slot, "TensorRT refused to deserialize it")
        result = ensure_plan(manifest, subset, cache, precision, plugin_library, progress)
        engine = deserialize_engine(runtime, result.plan)
    if engine is None:
        raise BackendError(
            f"TensorRT cannot deserialize plan {result.slot} that was just built here (see the TensorRT log above)"
        )
    return result, engine


# --- `binseg build` ---------------------------------------------------------------------------


def run_build(
    engines: Path,
    precision: str,
    cache_dir: Path | None,
    subsets: list[str] | None,
    plugin_library: str | Path | None,
) -> int:
    """Build (or find in the cache) and validate the plans of an engine folder's subsets.

    Each plan is deserialized once, so a plan that TensorRT refuses is rebuilt here rather
    than at the node's start. Prints one line per subset: slot, form, cached/built, size,
    seconds. Returns 0 when every subset has a valid plan, 1 when one failed (its error
    printed); missing TensorRT, cuda-python or GPU raise BackendError before any work.
    """
    from tqdm import tqdm

    manifest = Manifest.load(engines)
    manifest.verify()
    chosen = [manifest.entry(s).subset for s in subsets] if subsets else [e.subset for e in manifest.subsets.values()]
    trt = check_target(precision)
    cache = PlanCache(Path(cache_dir) if cache_dir is not None else default_plan_dir(manifest))
    plugin_library = resolve_plugin_library(plugin_library, cache.root)
    runtime = trt.Runtime(trt_logger())
    print(f"plans for {manifest.model} {manifest.version} at {precision} in {cache.root} (TensorRT {trt.__version__})")

    failed = 0
    for subset in tqdm(chosen, desc="build", unit="subset", file=sys.stderr):
        start = time.perf_counter()
        try:
            result, engine = load_engine(runtime, manifest, subset, cache, precision, plugin_library, progress=True)
            del engine
        except BinsegError as error:
            failed += 1
            tqdm.write(f"{subset_name(subset)}: FAILED: {error}", file=sys.stderr)
            continue
        tqdm.write(
            f"{result.slot:<28} {result.form:<7} {'built' if result.built else 'cached':<6} "
            f"{len(result.plan) / 1e6:7.1f} MB {time.perf_counter() - start:7.1f} s"
        )
    return 1 if failed else 0


