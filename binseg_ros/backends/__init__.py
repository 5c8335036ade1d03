"""Inference backends behind one :class:`~binseg_ros.backends.base.Backend` interface."""

from __future__ import annotations
