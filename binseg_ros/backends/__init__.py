"""Inference backends behind one :class:`~binseg_ros.core.backend.Backend` interface."""

from __future__ import annotations
