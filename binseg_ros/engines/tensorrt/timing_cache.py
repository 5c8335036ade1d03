"""The builder's timing cache: read at the start of a build, merged and written back at the end.

Kernel timings are most of a first build's minutes; the file is per (GPU, compute capability,
TensorRT version) (:meth:`~binseg_ros.engines.tensorrt.plan_cache.PlanCache.timing_cache_path`),
so another subset or precision built later on the same target reuses them. TensorRT-RTX
keeps no timing cache (its timing-cache calls are no-ops), so its builds use none. ``binseg build``
and a starting node may finish builds at the same time, hence the file lock around the
read-merge-write.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from binseg_ros.engines.tensorrt.plan_cache import write_atomic

LOG = logging.getLogger(__name__)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing) for the duration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def attach_timing_cache(config: Any, path: Path) -> None:
    """Give the build the timing cache saved at ``path`` (an empty one if missing or unreadable)."""
    data = path.read_bytes() if path.is_file() else b""
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


def save_timing_cache(config: Any, path: Path) -> None:
    """Merge what another build saved meanwhile into ours, then replace the file atomically.

    The read-merge-write runs under a lock on ``<path>.lock`` so two builds finishing at the
    same time (``binseg build`` beside a starting node) both keep their new timings.
    """
    ours = config.get_timing_cache()
    if ours is None:
        return
    with locked(path.with_name(path.name + ".lock")):
        if path.is_file():
            theirs = config.create_timing_cache(path.read_bytes())
            if theirs is not None and not ours.combine(theirs, False):
                LOG.debug("timing cache %s could not be merged; overwriting it with this build's", path)
        write_atomic(path, bytes(memoryview(ours.serialize())))
