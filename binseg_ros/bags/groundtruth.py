"""Ground-truth masks for a bag, looked up by the stamp of the image a mask answers.

A mask carries its anchor frame's stamp; the label nearest to it within a tolerance (by
default the synchroniser's slop) is its ground truth, so a mask anchored on depth while RGB
was silent is scored against the label of that moment too.

Two sources: a mono8 mask topic in the bag (``sensor_msgs/Image``, or ``CompressedImage`` as
image_transport sends it), or a folder of PNGs named by stamp in nanoseconds
(``1700000000066666667.png``). Masks are kept bit-packed, so a whole bag's labels fit in
memory while the images stream past.

Labels come in two conventions, 0/255 and 0/1; :func:`foreground` reads either, per label, as
each is read: a 0/1 label read as 0/255 would be empty, and every mask scored against nothing.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from binseg_ros.bags.io import bag_topics, read_messages, require_images
from binseg_ros.core.compressed import decode, is_compressed
from binseg_ros.core.messages import ConversionError, image_view, stamp_ns
from binseg_ros.errors import BagError

LOG = logging.getLogger(__name__)


class GroundTruth:
    """stamp (ns) → boolean mask."""

    def __init__(
        self,
        packed: dict[int, tuple[np.ndarray, tuple[int, int]]],
        files: dict[int, Path],
        source: str,
        tolerance_ns: int = 0,
    ) -> None:
        self._packed = packed
        self._files = files
        self.source = source
        self.tolerance_ns = tolerance_ns  # how far a mask's stamp may be from its label's
        self._stamps = sorted({*packed, *files})

    def __len__(self) -> int:
        return len(self._packed) + len(self._files)

    def nearest(self, stamp: int) -> int | None:
        """The label stamp closest to ``stamp`` within the tolerance (the earlier on a tie)."""
        return nearest_stamp(self._stamps, stamp, self.tolerance_ns)

    def lookup(self, stamp: int) -> np.ndarray | None:
        """The label nearest to ``stamp`` within the tolerance, as a boolean mask."""
        found = self.nearest(stamp)
        if found is None:
            return None
        stamp = found
        if stamp in self._packed:
            bits, shape = self._packed[stamp]
            return np.unpackbits(bits, count=shape[0] * shape[1]).reshape(shape).astype(bool)
        if stamp in self._files:
            image = cv2.imread(str(self._files[stamp]), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise BagError(f"ground-truth PNG {self._files[stamp]} cannot be read")
            return foreground(image)
        return None

    @classmethod
    def from_topic(cls, bag: str | Path, topic: str, tolerance_ns: int = 0) -> GroundTruth:
        types = bag_topics(bag)
        if topic not in types:
            raise BagError(f"{bag} has no ground-truth topic {topic}; pass --gt-topic or --gt-dir")
        require_images(bag, types, [topic])
        packed: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
        skipped = 0
        for message in read_messages(bag, [topic]):
            mask = _mono8_mask(message.msg)
            if mask is None:
                skipped += 1
                continue
            packed[stamp_ns(message.msg.header)] = (np.packbits(mask), mask.shape)
        if skipped:
            LOG.warning(
                "%s: %d ground-truth message(s) are not readable mono8 images and were left out", topic, skipped
            )
        return cls(packed, {}, f"topic {topic}", tolerance_ns)

    @classmethod
    def from_folder(cls, folder: str | Path, tolerance_ns: int = 0) -> GroundTruth:
        folder = Path(folder)
        if not folder.is_dir():
            raise BagError(f"ground-truth folder {folder} does not exist")
        files = {int(p.stem): p for p in folder.glob("*.png") if p.stem.isdigit()}
        return cls({}, files, f"folder {folder}", tolerance_ns)


def nearest_stamp(stamps: Sequence[int], stamp: int, tolerance_ns: int) -> int | None:
    """The stamp of sorted ``stamps`` closest to ``stamp`` within ``tolerance_ns`` (the earlier on a tie)."""
    index = bisect_left(stamps, stamp)
    candidates = stamps[max(0, index - 1) : index + 1]
    best = min(candidates, key=lambda s: abs(s - stamp), default=None)
    return best if best is not None and abs(best - stamp) <= tolerance_ns else None


def foreground(label: np.ndarray) -> np.ndarray:
    """A mono8 label as a boolean mask: a 0/1 label (maximum 1) where it is 1, any other where it
    is > 127 (0/255, and what JPEG or resizing left of it)."""
    return label > (0 if label.max(initial=0) == 1 else 127)


def _mono8_mask(msg: Any) -> np.ndarray | None:
    """A label message (Image or CompressedImage) as a boolean mask, or None when it is not a readable mono8 image."""
    if msg is None:
        return None
    try:
        encoding, pixels = decode(msg) if is_compressed(msg) else (msg.encoding, image_view(msg))
    except ConversionError:
        return None
    return foreground(pixels) if encoding == "mono8" else None
