"""A TensorRT ``IProgressMonitor`` that draws the builder's phases as tqdm bars on stderr.

A first build takes minutes on a Jetson; without progress it looks hung. The class is made
when a build asks for it, because its base class comes from ``tensorrt``, which is imported
only then (see :mod:`binseg_ros.engines.tensorrt.imports`).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

LOG = logging.getLogger(__name__)


def progress_monitor(trt: Any, label: str) -> Any:
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
                        total=num_steps,
                        desc=f"{label} {'  ' * depth}{phase_name}",
                        unit="step",
                        position=depth + 1,
                        leave=False,
                        file=sys.stderr,
                    )
            except Exception:
                LOG.debug("progress bar failed", exc_info=True)

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                with self._lock:
                    bar = self._bars.get(phase_name)
                    if bar is not None:
                        bar.update(step + 1 - bar.n)  # steps are numbered from 0
            except Exception:
                LOG.debug("progress bar failed", exc_info=True)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            try:
                with self._lock:
                    self._depth.pop(phase_name, None)
                    bar = self._bars.pop(phase_name, None)
                    if bar is not None:
                        bar.close()
            except Exception:
                LOG.debug("progress bar failed", exc_info=True)

        def close(self) -> None:
            with self._lock:
                for bar in self._bars.values():
                    bar.close()
                self._bars.clear()

    return TqdmProgressMonitor()
