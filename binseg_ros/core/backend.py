"""The ``Backend`` protocol every runtime implements, and the input checks they share.

It lives in the core because the core is what calls it (the segmenter, the evaluations): the
runtimes in :mod:`binseg_ros.backends` depend on this contract, never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from binseg_ros.errors import InputError
from binseg_ros.modalities import Subset, parse_subset


class Backend(Protocol):
    """Runs the engine for the subset given by the input keys.

    ``inputs`` maps modality names to ``[1, C, H, W]`` float32 arrays in sensor units at the
    manifest's input size (see :mod:`binseg_ros.preprocess`); the result is the foreground
    probability ``[H, W]`` float32.
    """

    name: str

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray: ...


def input_subset(inputs: Mapping[str, np.ndarray]) -> Subset:
    """The subset a backend's inputs stand for: the backend API's boundary, where the keys of a
    caller's mapping are validated and put in canonical order, once."""
    return parse_subset(list(inputs))


def check_arrays(
    subset: Subset, inputs: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    """Check shapes and dtypes against an engine's inputs; return float32 arrays.

    Raises:
        InputError: a shape that differs from the engine's static input shape, or a non-float dtype.
    """
    arrays = {}
    for modality in subset:
        array = np.asarray(inputs[modality])
        if array.shape != tuple(expected[modality]):
            raise InputError(f"{modality}: engine expects shape {tuple(expected[modality])}, got {array.shape}")
        if not np.issubdtype(array.dtype, np.floating):
            raise InputError(f"{modality}: engine expects floating-point input, got {array.dtype}")
        arrays[modality] = np.ascontiguousarray(array, dtype=np.float32)
    return arrays
