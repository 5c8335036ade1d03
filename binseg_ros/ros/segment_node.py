"""``ros2 run binseg_ros segment_node`` (and ``python -m binseg_ros.ros.segment_node``).

The stop signals are taken before anything else is imported: rclpy, numpy and the inference
runtimes take half a second to a second to import, and a SIGINT or SIGTERM then would get
Python's defaults (a KeyboardInterrupt traceback, or death by SIGTERM) instead of a clean exit 0.
"""

from __future__ import annotations

import sys

from binseg_ros.ros.stop import StopRequested, StopSignals, stop_requested


def main(args: list[str] | None = None) -> int:
    """Install the stop signals, then import and run the node (:func:`binseg_ros.ros.node.main`)."""
    StopSignals.install()
    try:
        from binseg_ros.ros.node import main as run_node
    except StopRequested:
        return 0
    except Exception:
        if stop_requested():  # an extension module reports the interrupted import as its own error
            return 0
        raise
    return run_node(args)


if __name__ == "__main__":
    sys.exit(main())
