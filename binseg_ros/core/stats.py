"""Rates and latency percentiles over a sliding window, for diagnostics and reports."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class RateMeter:
    """Events per second over the last ``window`` seconds of a caller-supplied clock."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.total = 0

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)
            self.total += 1
            self._trim(now)

    def rate(self, now: float) -> float:
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def count(self, now: float) -> int:
        """Events in the last ``window`` seconds."""
        with self._lock:
            self._trim(now)
            return len(self._times)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()


class LatencyWindow:
    """The last ``size`` latencies (seconds) and their percentiles."""

    def __init__(self, size: int = 300) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(seconds)

    def percentiles(self, *qs: float) -> tuple[float, ...]:
        """Percentiles in seconds (NaN while empty)."""
        with self._lock:
            if not self._values:
                return tuple(float("nan") for _ in qs)
            return tuple(float(v) for v in np.percentile(np.fromiter(self._values, float), qs))
