"""Benchmarks: timings live here, never in pass/fail tests, and report ratios to a baseline."""

from __future__ import annotations
