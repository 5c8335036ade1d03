"""Ground-truth masks for a bag, looked up by the exact stamp of the image a mask answers.

Two sources: a mono8 mask topic in the bag (> 127 = foreground), or a folder of PNGs named
by stamp in nanoseconds (``1700000000066666667.png``). Masks are kept bit-packed, so a
whole bag's labels fit in memory while the images stream past.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from binseg_ros.bags.io import bag_topics, read_messages
from binseg_ros.core.messages import ConversionError, image_view, stamp_ns
from binseg_ros.errors import BagError

LOG = logging.getLogger(__name__)


class GroundTruth:
    """stamp (ns) → boolean mask."""

    def __init__(
        self, packed: dict[int, tuple[np.ndarray, tuple[int, int]]], files: dict[int, Path], source: str
    ) -> None:
        self._packed = packed
        self._files = files
        self.source = source

    def __len__(self) -> int:
        return len(self._packed) + len(self._files)

    def lookup(self, stamp: int) -> np.ndarray | None:
        if stamp in self._packed:
            bits, shape = self._packed[stamp]
            return np.unpackbits(bits, count=shape[0] * shape[1]).reshape(shape).astype(bool)
        if stamp in self._files:
            image = cv2.imread(str(self._files[stamp]), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise BagError(f"ground-truth PNG {self._files[stamp]} cannot be read")
            return image > 127
        return None

    @classmethod
    def from_topic(cls, bag: str | Path, topic: str) -> GroundTruth:
        if topic not in bag_topics(bag):
            raise BagError(f"{bag} has no ground-truth topic {topic}; pass --gt-topic or --gt-dir")
        packed: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
        skipped = 0
        for message in read_messages(bag, [topic]):
            if message.msg is None or message.msg.encoding != "mono8":
                skipped += 1
                continue
            try:
                mask = image_view(message.msg) > 127
            except ConversionError:
                skipped += 1
                continue
            packed[stamp_ns(message.msg.header)] = (np.packbits(mask), mask.shape)
        if skipped:
            LOG.warning(
                "%s: %d ground-truth message(s) are not readable mono8 images and were left out", topic, skipped
            )
        return cls(packed, {}, f"topic {topic}")

    @classmethod
    def from_folder(cls, folder: str | Path) -> GroundTruth:
        folder = Path(folder)
        if not folder.is_dir():
            raise BagError(f"ground-truth folder {folder} does not exist")
        files = {int(p.stem): p for p in folder.glob("*.png") if p.stem.isdigit()}
        return cls({}, files, f"folder {folder}")
