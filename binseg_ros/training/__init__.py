"""Training on registered RGB / depth / thermal folders (``binseg train``)."""

from __future__ import annotations
