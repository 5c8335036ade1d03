"""Latest-wins inference worker: a queue of depth 1 off the subscription callbacks.

When inference is slower than the sensors, a set still waiting when a newer one arrives is
replaced and counted (``superseded``), so latency stays bounded instead of a backlog growing.
Stopping lets the set in flight finish; the one still waiting, and any submitted later, is never
segmented and is counted too (``shutdown``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

from binseg_ros.core.drops import DropReason

T = TypeVar("T")
LOG = logging.getLogger(__name__)


class LatestWinsWorker(Generic[T]):
    """Runs ``handle(item)`` on a background thread for the newest submitted item; ``on_drop(item,
    reason)`` for each item it will never handle."""

    def __init__(
        self, handle: Callable[[T], None], on_drop: Callable[[T, DropReason], None], name: str = "inference"
    ) -> None:
        self._handle = handle
        self._on_drop = on_drop
        self._pending: T | None = None
        self._condition = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> None:
        with self._condition:
            if self._stopping:
                self._on_drop(item, DropReason.SHUTDOWN)
                return
            if self._pending is not None:
                self._on_drop(self._pending, DropReason.SUPERSEDED)
            self._pending = item
            self._condition.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Let the item in flight finish; the one waiting is dropped."""
        with self._condition:
            self._stopping = True
            if self._pending is not None:
                self._on_drop(self._pending, DropReason.SHUTDOWN)
                self._pending = None
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
