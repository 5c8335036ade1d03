"""The ROS-free code's ``logging`` records, in the node's ROS log.

The core, the backends and the TensorRT plan cache log through Python's ``logging`` (they run
in the CLI and the bag tools too, without ROS). Inside the node nothing would configure it,
so their lines (a TensorRT plan rebuilt and why, the backend ``auto`` chose, a sensor too slow
for ``modality_timeout``) would reach no ROS log: Python prints warnings bare on stderr and
drops the rest. This handler sends them to the node's rclpy logger instead, with their level,
so they land in the console, the log files and ``/rosout`` like the node's own lines.
"""

from __future__ import annotations

import logging

from rclpy.impl.rcutils_logger import RcutilsLogger

PACKAGE_LOGGER = "binseg_ros"


class RosLogHandler(logging.Handler):
    """Forwards each record to an rclpy logger at the matching severity."""

    def __init__(self, logger: RcutilsLogger) -> None:
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        # One call per severity, not ``log(message, severity)``: rclpy ties a severity to the
        # line that logs, and refuses another one from the same line.
        try:
            message = self.format(record)
            if record.levelno >= logging.CRITICAL:
                self._logger.fatal(message)
            elif record.levelno >= logging.ERROR:
                self._logger.error(message)
            elif record.levelno >= logging.WARNING:
                self._logger.warning(message)
            elif record.levelno >= logging.INFO:
                self._logger.info(message)
            else:
                self._logger.debug(message)
        except Exception:  # noqa: BLE001 - logging must never take the node down
            self.handleError(record)


def forward_package_logs(logger: RcutilsLogger) -> None:
    """Send the package's ``logging`` records (INFO and above) to ``logger``, once per process."""
    package = logging.getLogger(PACKAGE_LOGGER)
    if any(isinstance(handler, RosLogHandler) for handler in package.handlers):
        return
    handler = RosLogHandler(logger)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    package.propagate = False  # not printed a second time by a handler on the root logger
