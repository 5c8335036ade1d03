"""Checksums written into every bag, so that a damaged one fails loudly when it is read.

rosbags writes each mcap chunk with CRC 0 ("not computed"), and a sqlite3 database keeps no
checksum of the bytes a row holds, so 64 KiB of garbage in an image payload decodes as an image
and an evaluation over it exits 0 with wrong numbers. Each storage gets the check it can carry:

- **mcap**: the format's own field, each chunk's ``uncompressed_crc`` (CRC-32 of the chunk's
  records). :class:`ChecksummedWriter` is rosbags' writer with that field filled in, so every
  mcap reader (rosbags, ``ros2 bag``, the mcap tools) checks it, not only this package.
- **sqlite3**: the format has no such field, and ``PRAGMA integrity_check`` looks at the
  database's structure (pages, overflow chains), not at the bytes a row holds: a changed payload
  passes it. :class:`MessageCrcs` keeps, in metadata.yaml's ``custom_data``, per topic and per
  second of log time, how many messages there are and the sum of their CRC-32s (over log time
  and CDR bytes). A sum does not depend on the order storage returns messages of equal
  timestamp in, and the record stays small (a few numbers per topic and second).

They are verified by :func:`binseg_ros.bags.integrity.verify_bag` before a verb reads a bag.
"""

from __future__ import annotations

import json
import struct
from binascii import crc32
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.rosbag2.storage_mcap import McapWriter

from binseg_ros.errors import BagError

if TYPE_CHECKING:
    from rosbags.rosbag2.writer import StorageWriter

CRC_KEY = "binseg.message_crc32"  # custom_data entry of a sqlite3 bag: its MessageCrcs
WINDOW_NS = 1_000_000_000  # the log-time span one MessageCrcs entry covers
# An mcap chunk record: opcode (1), record length (8), message start and end time (8 + 8),
# uncompressed size (8), then the uncompressed CRC (4), the compression name and the data.
CHUNK_CRC_AT = 1 + 8 + 8 + 8 + 8
U32 = struct.Struct("<I")


class _ChecksummedMcapStorage(McapWriter):
    """rosbags' mcap storage writer, with each chunk's CRC written where rosbags writes 0."""

    def close_chunk(self) -> None:
        crc = crc32(self.chunk.bio.getvalue())
        start = self.bio.tell()  # rosbags writes the chunk record here, first thing
        super().close_chunk()
        end = self.bio.tell()
        self.bio.seek(start + CHUNK_CRC_AT)
        self.bio.write(U32.pack(crc))
        self.bio.seek(end)


class ChecksummedWriter(Writer):
    """rosbags' rosbag2 writer whose mcap chunks carry their CRCs (sqlite3 as rosbags writes it)."""

    STORAGE_PLUGINS: Mapping[StoragePlugin, type[StorageWriter]] = MappingProxyType(
        {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _ChecksummedMcapStorage}
    )


class MessageCrcs:
    """Per topic and second of log time: (message count, sum of the messages' CRC-32s mod 2**32)."""

    def __init__(self, sums: dict[str, dict[int, tuple[int, int]]] | None = None) -> None:
        self.sums: dict[str, dict[int, tuple[int, int]]] = sums or {}

    def add(self, topic: str, log_time: int, data: bytes | memoryview) -> None:
        """Count one message; its log time is in the CRC, so a message moved in time is a change too."""
        crc = crc32(data, crc32(log_time.to_bytes(8, "little")))
        windows = self.sums.setdefault(topic, {})
        count, total = windows.get(log_time // WINDOW_NS, (0, 0))
        windows[log_time // WINDOW_NS] = (count + 1, (total + crc) % 2**32)

    def annotation(self) -> str:
        """The record as metadata.yaml keeps it (compact JSON)."""
        sums = {topic: {str(w): list(v) for w, v in sorted(windows.items())} for topic, windows in self.sums.items()}
        return json.dumps(sums, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str, bag: Path) -> MessageCrcs:
        """The record :meth:`annotation` wrote; BagError if the entry is not one."""
        try:
            data = json.loads(text)
            return cls({t: {int(w): (int(c), int(s)) for w, (c, s) in ws.items()} for t, ws in data.items()})
        except (ValueError, TypeError, AttributeError) as exc:
            raise BagError(f"{bag}: metadata entry {CRC_KEY} is not a message CRC record ({exc})") from exc

    def entries(self) -> int:
        return sum(len(windows) for windows in self.sums.values())

    def differences(self, other: MessageCrcs) -> list[tuple[str, int]]:
        """(topic, second) whose count or CRC sum differs between the two records, in time order."""
        keys = {(t, w) for record in (self, other) for t, ws in record.sums.items() for w in ws}
        return sorted(
            ((t, w) for t, w in keys if self.sums.get(t, {}).get(w) != other.sums.get(t, {}).get(w)),
            key=lambda key: (key[1], key[0]),
        )
