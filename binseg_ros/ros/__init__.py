"""The rclpy adapter: messages in and out, parameters, diagnostics. Thin by design."""

from __future__ import annotations
