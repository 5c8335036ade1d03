"""The TensorRT plugin library that runs the frequency branch inside engines: found or built,
then registered with TensorRT's plugin registry.

``plugin_library`` settings: ``none`` (or empty) builds the plugin-free ``matmul`` graphs; a
path loads that library; ``auto`` builds ``libbinseg_trt_plugins.so`` once per GPU
architecture and TensorRT version into the plan cache, where TensorRT's headers and nvcc are
installed (a JetPack image has both), and otherwise falls back to ``matmul`` with a log line.
TensorRT-RTX has no plugin layers: there every setting resolves to no plugin (a path with a
warning) and no library is ever loaded, because its ONNX parser aborts the process when it
meets a plugin node with a plugin library loaded.

The library is loaded once per process, where the setting is resolved (the backend's start,
``binseg build``'s start); the builder and the plan cache only ask whether it was loaded.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from binseg_ros.engines.tensorrt.imports import device_identity, import_tensorrt, trt_logger
from binseg_ros.engines.tensorrt.targets import Flavour
from binseg_ros.errors import BackendError
from binseg_ros.kernels.build import (
    FREQUENCY_SPLIT,
    FREQUENCY_SPLIT_HEADER,
    FREQUENCY_SPLIT_PLUGIN,
    PLUGIN_LIBRARY,
    cached_library,
    compile_plugin_library,
    find_tensorrt_include,
)
from binseg_ros.kernels.plugin_identity import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

LOG = logging.getLogger(__name__)
AUTO = "auto"
NONE = ("", "none")


def resolve_plugin_library(setting: str | Path | None, cache_root: Path, flavour: Flavour) -> Path | None:
    """The library a ``plugin_library`` setting stands for on ``flavour``; ``None`` means no plugin.

    An explicit path is returned as it is: :func:`load_plugin_library` checks it.
    """
    if setting is None or str(setting) in NONE:
        return None
    if not flavour.takes_plugins:
        log = LOG.info if str(setting) == AUTO else LOG.warning
        log("%s has no plugin layers: plugin library %s is not loaded, the matmul graphs are built", flavour, setting)
        return None
    if str(setting) != AUTO:
        return Path(setting).expanduser()
    include = find_tensorrt_include()
    if include is None:
        LOG.warning("no TensorRT headers (NvInferRuntime.h) here to build the plugin: using the matmul graphs")
        return None
    trt = import_tensorrt()
    _, major, minor = device_identity()
    arch = f"sm_{major}{minor}"
    try:
        return cached_library(
            cache_root / "plugins",
            f"{PLUGIN_LIBRARY.removesuffix('.so')}.{arch}.so",
            (FREQUENCY_SPLIT, FREQUENCY_SPLIT_HEADER, FREQUENCY_SPLIT_PLUGIN, include / "NvInferVersion.h"),
            f"{arch} TensorRT {trt.__version__}",
            lambda scratch: compile_plugin_library(scratch, arch, include),
        )
    except (BackendError, OSError) as error:
        LOG.warning("could not build the TensorRT plugin library (%s): using the matmul graphs", error)
        return None


_PLUGIN_LOCK = threading.Lock()
_PLUGIN_HANDLES: dict[str, Any] = {}


def load_plugin_library(path: str | Path) -> None:
    """Register the frequency-split plugin creator from a shared library (once per path).

    Uses the plugin registry's ``load_library``, which calls the library's ``getCreators``
    entry point; a plain ``ctypes.CDLL`` would not register an IPluginV3 creator. Loading a
    library twice would register its creators twice, hence the per-path memo.

    Raises:
        BackendError: missing file, TensorRT refuses the library, or it lacks our creator.
    """
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise BackendError(f"TensorRT plugin library {resolved} does not exist")
    with _PLUGIN_LOCK:
        if str(resolved) in _PLUGIN_HANDLES:
            return
        trt = import_tensorrt()
        trt_logger()  # TensorRT's logging set up before the library's setLoggerFinder is called
        registry = trt.get_plugin_registry()
        try:
            handle = registry.load_library(str(resolved))
        except (RuntimeError, TypeError) as exc:
            raise BackendError(f"TensorRT could not load plugin library {resolved}: {exc}") from exc
        if handle is None:
            raise BackendError(
                f"TensorRT could not load plugin library {resolved} (see the TensorRT log above): it must "
                "export getCreators/setLoggerFinder and be built against this TensorRT major version"
            )
        get_creator = getattr(registry, "get_creator", None)  # IPluginRegistry.get_creator: TensorRT ≥ 10.0
        if get_creator is not None and get_creator(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE) is None:
            raise BackendError(
                f"plugin library {resolved} registers no creator {PLUGIN_NAMESPACE}::{PLUGIN_NAME} "
                f"version {PLUGIN_VERSION}, which the kernel graphs need"
            )
        _PLUGIN_HANDLES[str(resolved)] = handle
        LOG.info("loaded TensorRT plugin library %s", resolved)
