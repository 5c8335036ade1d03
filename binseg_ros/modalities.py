"""Modality names, channel counts and modality subsets.

A *subset* is a non-empty tuple of modality names in canonical order (rgb, depth, thermal).
Canonical order matters: it is the order of the ONNX graph inputs and of the subset name
(``rgb+depth``) used as a key in manifests, diagnostics and reports.

:func:`parse_subset` is the one place a subset is validated and put in order. It runs where a
subset enters the package (a parameter, a CLI flag, a manifest, the keys of a backend's or the
network's inputs); past that boundary a :data:`Subset` is trusted as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations
from typing import NewType

from binseg_ros.errors import ModalityError

MODALITIES: tuple[str, ...] = ("rgb", "depth", "thermal")
"""Every modality the network knows, in canonical order."""

CHANNELS: dict[str, int] = {"rgb": 3, "depth": 1, "thermal": 1}
"""Channel count of each modality's network input."""

Subset = NewType("Subset", tuple[str, ...])
"""A validated, canonically ordered, non-empty modality tuple (only :func:`parse_subset` and
:func:`canonical` make one)."""

NO_SUBSET = Subset(())
"""What the runtime reports before its first mask, or when nothing is active."""


def parse_subset(spec: str | Iterable[str]) -> Subset:
    """Turn ``"rgb+depth"``, ``"depth,rgb"`` or ``["rgb", "depth"]`` into a canonical subset.

    Raises:
        ModalityError: an unknown or repeated name, or an empty subset.
    """
    if isinstance(spec, str):
        names = [part.strip() for part in spec.replace(",", "+").split("+") if part.strip()]
    else:
        names = list(spec)
    if not names:
        raise ModalityError(f"empty modality subset {spec!r}: name at least one of {', '.join(MODALITIES)}")
    unknown = [name for name in names if name not in MODALITIES]
    if unknown:
        raise ModalityError(
            f"unknown modality {unknown[0]!r} in subset {spec!r}; expected names from {', '.join(MODALITIES)}"
        )
    if len(set(names)) != len(names):
        raise ModalityError(f"modality subset {spec!r} names a modality twice")
    return canonical(names)


def canonical(names: Iterable[str]) -> Subset:
    """Known modality names (already checked) in canonical order; unknown names are left out."""
    present = set(names)
    return Subset(tuple(m for m in MODALITIES if m in present))


def subset_name(subset: Subset) -> str:
    """The canonical ``+``-joined name of a subset, e.g. ``rgb+thermal`` (``none`` when empty)."""
    return "+".join(subset) if subset else "none"


def all_subsets() -> list[Subset]:
    """All 7 non-empty subsets, the full set first and single modalities last."""
    return [Subset(combo) for size in range(len(MODALITIES), 0, -1) for combo in combinations(MODALITIES, size)]


def image_topic(modality: str) -> str:
    """The camera topic the node subscribes to for ``modality``, relative to its namespace."""
    return f"{modality}/image"
