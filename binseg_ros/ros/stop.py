"""SIGINT and SIGTERM as one request to stop, with the standard library only.

Installed by the entry point (:mod:`binseg_ros.ros.segment_node`) before it imports rclpy and
the engines (half a second to a second), so a signal at any moment of the start-up is a stop,
not a KeyboardInterrupt traceback or a kill. Signals that arrive after the first are ignored,
so a second Ctrl-C cannot cut the clean-up short.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(KeyboardInterrupt):
    """SIGINT or SIGTERM: stop now. A KeyboardInterrupt, so code that lets Ctrl-C through lets SIGTERM through too."""


_STOP = threading.Event()  # set by the first stop signal: signal dispositions belong to the process


def stop_requested() -> bool:
    """A stop signal came. Code that catches Exception asks this, because the StopRequested raised
    in it may reach it as another error: pybind11 reports one raised while a module initialises
    (``import onnxruntime`` in a configure) as ``ImportError: initialization failed``."""
    return _STOP.is_set()


class StopSignals:
    """SIGINT and SIGTERM handled as one request to stop; install before anything slow starts."""

    @classmethod
    def install(cls) -> StopSignals:
        handler = cls()
        for number in STOP_SIGNALS:
            signal.signal(number, handler._on_signal)
        return handler

    def hold(self) -> None:
        """Ignore both signals from now on, so the clean-up that follows runs to its end.

        Ignored, rather than handled, because the interpreter puts its default handlers back while
        it exits, except for ignored signals: a second SIGINT (a terminal and ``ros2 launch`` each
        send one) would otherwise kill the process after a clean stop.
        """
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_IGN)

    def _on_signal(self, number: int, _frame: FrameType | None) -> None:
        self.hold()
        _STOP.set()
        raise StopRequested(signal.Signals(number).name)
