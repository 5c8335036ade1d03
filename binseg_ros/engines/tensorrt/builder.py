"""Building one TensorRT plan from one ONNX graph for a target: this machine's GPU, or with
TensorRT-RTX a compute capability ahead of time (see :mod:`binseg_ros.engines.tensorrt.targets`).

:mod:`binseg_ros.engines.tensorrt.loading` decides when to build and caches the plan. What a
flavour can take and its builder settings are in :mod:`binseg_ros.engines.tensorrt.rules`;
this module refuses a graph the flavour cannot take before the parser sees it, then only
drives TensorRT, imported when a build starts.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from binseg_ros.engines.tensorrt.imports import import_tensorrt, trt_logger
from binseg_ros.engines.tensorrt.progress import progress_monitor
from binseg_ros.engines.tensorrt.rules import Precision, builder_settings, check_graph
from binseg_ros.engines.tensorrt.targets import BuildTarget, capability_member
from binseg_ros.engines.tensorrt.timing_cache import attach_timing_cache, save_timing_cache
from binseg_ros.errors import BackendError
from binseg_ros.kernels.plugin_identity import PLUGIN_NAME, PLUGIN_NAMESPACE

LOG = logging.getLogger(__name__)

DEFAULT_WORKSPACE_BYTES = 1 << 30
"""Builder scratch limit (1 GiB): plenty for these graphs, and safe on an 8 GiB Orin whose GPU
shares memory with the CPU."""


def build_plan(
    onnx_path: str | Path,
    target: BuildTarget,
    precision: Precision = "fp16",
    timing_cache_path: str | Path | None = None,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    progress: bool = True,
) -> bytes:
    """Build a serialized TensorRT engine (plan) from one ONNX graph for ``target``.

    ``target`` comes from :func:`~binseg_ros.engines.tensorrt.imports.check_target`, which
    imported this process's TensorRT. ``precision``: ``fp16`` (default; the FP16 flag on
    TensorRT 10.x, the fp16-typed graph where strongly typed, see
    :func:`~binseg_ros.engines.tensorrt.rules.builder_settings`), ``fp32`` (TF32 off, so
    it matches ONNX Runtime closely), or ``int8`` (graphs with Q/DQ nodes only). A graph the
    flavour cannot take (plugin nodes, DFT, int8 without Q/DQ) is refused before parsing
    (:func:`~binseg_ros.engines.tensorrt.rules.check_graph`). The timing cache at
    ``timing_cache_path`` (``None`` where the flavour keeps none) is loaded before and merged
    back after the build. A kernel graph's plugin nodes need the plugin library registered
    first (loaded once per process, where the library setting is resolved).

    Raises:
        BackendError: a graph or precision the flavour cannot take, parser errors (all of
            them, naming the file), or a failed build.
    """
    onnx_path = Path(onnx_path)
    check_graph(onnx_path, target.flavour, precision)
    trt = import_tensorrt()
    strongly_typed, flag_names = builder_settings(target.flavour, precision)
    cache_path = Path(timing_cache_path) if timing_cache_path is not None else None

    builder = trt.Builder(trt_logger())
    network, parser = _parse(trt, builder, onnx_path)  # parser kept until the build ends
    config = _builder_config(trt, builder, target, precision, flag_names, workspace_bytes, cache_path)
    monitor = progress_monitor(trt, onnx_path.name) if progress else None
    if monitor is not None:
        config.progress_monitor = monitor

    start = time.perf_counter()
    try:
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BackendError(f"TensorRT failed to build {onnx_path} at {precision} (see the TensorRT log above)")
        if cache_path is not None:
            save_timing_cache(config, cache_path)
        data = bytes(memoryview(plan))
    finally:
        # The monitor must outlive every TensorRT object that uses it.
        del config, parser, network, builder
        if monitor is not None:
            monitor.close()
    LOG.info(
        "built %s at %s%s in %.1f s (%.1f MB)",
        onnx_path.name,
        precision,
        " (strongly typed)" if strongly_typed else "",
        time.perf_counter() - start,
        len(data) / 1e6,
    )
    return data


def _parse(trt: Any, builder: Any, onnx_path: Path) -> tuple[Any, Any]:
    """``(network, parser)`` with the graph parsed into the network; the parser must outlive
    the build, so it is returned too.

    Raises:
        BackendError: every error the parser recorded (see :func:`_parse_error`).
    """
    # TensorRT 10: 0 = weakly typed (STRONGLY_TYPED would forbid the FP16/INT8 flags).
    # TensorRT ≥ 11 and TensorRT-RTX: every network is strongly typed; the STRONGLY_TYPED flag
    # is deprecated there and ignored, so 0 is the documented way to create one.
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, trt_logger())
    # parse_from_file, not parse(bytes): it resolves tensors.bin relative to the graph file.
    if not parser.parse_from_file(str(onnx_path)):
        raise _parse_error(parser, onnx_path)
    return network, parser


def _parse_error(parser: Any, onnx_path: Path) -> BackendError:
    """Every error the ONNX parser recorded, naming the file, with a hint when the plugin is missing."""
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    hint = ""
    if any("Plugin not found" in e for e in errors):
        hint = f"\n  (the {PLUGIN_NAMESPACE}::{PLUGIN_NAME} plugin creator is not registered: load the plugin library)"
    return BackendError(
        f"TensorRT could not parse {onnx_path} ({len(errors)} error(s)):\n  "
        + "\n  ".join(errors or ["no parser error recorded; see the TensorRT log above"])
        + hint
    )


def _builder_config(
    trt: Any,
    builder: Any,
    target: BuildTarget,
    precision: Precision,
    flag_names: tuple[str, ...],
    workspace_bytes: int,
    cache_path: Path | None,
) -> Any:
    """The ``IBuilderConfig``: workspace limit, precision flags, TF32 off for fp32, the compute
    capability (TensorRT-RTX, which builds for a named one), and the timing cache if any."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    for name in flag_names:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default: fp32 should mean fp32 inner products
    if target.flavour.builds_ahead_of_time:
        # One named capability, also for this machine's GPU: the plan is then the same one an
        # ahead-of-time build makes, which is why such a plan serves this GPU (PlanKey.accepts).
        config.num_compute_capabilities = 1
        member = getattr(trt.ComputeCapability, capability_member(target.compute_capability))
        if not config.set_compute_capability(member, 0):
            raise BackendError(f"{target.flavour} refused compute capability {target.compute_capability}")
    if cache_path is not None:
        attach_timing_cache(config, cache_path)
    return config
