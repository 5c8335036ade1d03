"""Latest-wins inference worker: a queue of depth 1 off the subscription callbacks.

When inference is slower than the sensors, a set still waiting when a newer one arrives is
replaced and counted (``superseded``), so latency stays bounded instead of a backlog growing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")
LOG = logging.getLogger(__name__)


class LatestWinsWorker(Generic[T]):
    """Runs ``handle(item)`` on a background thread for the newest submitted item."""

    def __init__(
        self, handle: Callable[[T], None], on_superseded: Callable[[T], None], name: str = "inference"
    ) -> None:
        self._handle = handle
        self._on_superseded = on_superseded
        self._pending: T | None = None
        self._condition = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> None:
        with self._condition:
            if self._pending is not None:
                self._on_superseded(self._pending)
            self._pending = item
            self._condition.notify()

    def stop(self, timeout: float = 5.0) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._condition:
                while self._pending is None and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                item = cast(T, self._pending)  # not None: the wait above ends on an item or a stop
                self._pending = None
            try:
                self._handle(item)
            except Exception:  # keep serving: one bad item must not end the thread for good
                LOG.exception("worker %s: handler failed", self._thread.name)
