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
``binseg build``'s start); after that only its sha256 is passed on, to name the library in
the key of each plan built with its plugin.
"""

from __future__ import annotations

import hashlib
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
_LOADED: dict[str, tuple[Any, str]] = {}  # resolved path -> (TensorRT's library handle, the file's sha256)
_CREATOR = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME} version {PLUGIN_VERSION}"


def load_plugin_library(path: str | Path) -> str:
    """Register the frequency-split plugin creator from a shared library (once per path) and
    return the library's sha256, which keys the plans built with it (see
    :class:`~binseg_ros.engines.tensorrt.plan_cache.PlanKey`): the file's bytes, so that a
    library rebuilt or replaced under the same path is another library too.

    Uses the plugin registry's ``load_library``, which calls the library's ``getCreators``
    entry point; a plain ``ctypes.CDLL`` would not register an IPluginV3 creator. TensorRT
    refuses a library one of whose plugins is registered already, hence the per-path memo for
    a second load of the same library. A creator registered by anything else (another library
    path, other code in this process) is refused: the registry cannot say which library it came
    from, so its kernels could not be matched to the plans built with them.

    Raises:
        BackendError: missing file, the creator registered already, TensorRT refuses the
            library, or it lacks our creator.
    """
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise BackendError(f"TensorRT plugin library {resolved} does not exist")
    with _PLUGIN_LOCK:
        if str(resolved) in _LOADED:
            return _LOADED[str(resolved)][1]
        trt = import_tensorrt()
        trt_logger()  # TensorRT's logging set up before the library's setLoggerFinder is called
        registry = trt.get_plugin_registry()
        sha256 = hashlib.sha256(resolved.read_bytes()).hexdigest()
        try:
            handle, failure = registry.load_library(str(resolved)), ""
        except (RuntimeError, TypeError) as exc:
            handle, failure = None, f": {exc}"
        if handle is None:
            # Asked only now: a lookup of a creator that is not there may log an error of its own.
            if registry.get_creator(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE) is not None:
                by = f"plugin library {', '.join(_LOADED)}" if _LOADED else "other code"
                raise BackendError(
                    f"cannot load TensorRT plugin library {resolved}: the plugin {_CREATOR} is already registered "
                    f"in this process (by {by}), and TensorRT registers a plugin once per process; load one plugin "
                    "library"
                )
            raise BackendError(
                f"TensorRT could not load plugin library {resolved}{failure or ' (see the TensorRT log above)'}: it "
                "must export getCreators/setLoggerFinder and be built against this TensorRT major version"
            )
        if registry.get_creator(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE) is None:
            raise BackendError(
                f"plugin library {resolved} registers no creator {_CREATOR}, which the kernel graphs need"
            )
        _LOADED[str(resolved)] = (handle, sha256)
        LOG.info("loaded TensorRT plugin library %s (sha256 %s)", resolved, sha256[:16])
        return sha256
