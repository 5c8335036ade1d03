"""``verify_bag``: every checksum a bag carries, checked before ``evaluate`` or ``replay`` reads it.

A damaged chunk (sqlite3: topic-second) stops the verb with one line naming the file, the chunk
and its byte offset, and the topics in it (:mod:`binseg_ros.bags.checksums` says what is written
and why). Checking first, rather than failing half-way through, means no report or live run is
made from a bag that is only partly whole, and the ground truth is never read from a damaged one.

A bag written without checksums (mcap chunks with CRC 0 from another rosbags writer, sqlite3
from ``ros2 bag record``) is *unverifiable*: :attr:`Integrity.unverifiable` says so, and the CLI
prints it as a warning, not an error, because such bags are ordinary and most of them are whole;
damage that breaks their structure still fails the read as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rosbags.rosbag2 import Reader
from rosbags.rosbag2.reader import DirectoryReader
from rosbags.rosbag2.storage_mcap import ChunkInfo, McapReader, decompress
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

from binseg_ros.bags.checksums import CHUNK_CRC_AT, CRC_KEY, U32, WINDOW_NS, MessageCrcs
from binseg_ros.bags.io import open_bag
from binseg_ros.errors import BagError


@dataclass(frozen=True)
class Integrity:
    """What :func:`verify_bag` found in a bag that is not damaged."""

    verified: int  # mcap chunks, or sqlite3 topic-seconds, whose checksum matched
    unverifiable: str = ""  # why (part of) the bag carries no checksum; empty when all of it does


def verify_bag(path: str | Path) -> Integrity:
    """Check every checksum the bag at ``path`` carries, reading it once.

    Raises:
        BagError: the bag does not open, or a chunk (topic-second) does not match its checksum;
            the message names the file, the chunk and its byte offset (the topic and second), and the topics.
    """
    with open_bag(path) as reader:
        files = reader.storage.storages if isinstance(reader.storage, DirectoryReader) else [reader.storage]
        mcaps = [storage for storage in files if isinstance(storage, McapReader)]
        if mcaps:
            return _verify_mcap(mcaps)
        databases = [Path(str(storage.path)) for storage in files if isinstance(storage, Sqlite3Reader)]
        return _verify_sqlite(Path(path), reader, databases)


def _verify_mcap(files: list[McapReader]) -> Integrity:
    """Each chunk's CRC; chunks with CRC 0 (and files without chunks) are counted as unverifiable."""
    verified, notes = 0, []
    for storage in files:
        path = Path(str(storage.path))
        unchecked = 0
        with path.open("rb") as file:
            for index, chunk in enumerate(storage.chunks):
                checked = _check_chunk(file, chunk, f"{path}: chunk {index} of {len(storage.chunks)}", storage)
                verified += checked
                unchecked += not checked
        if unchecked or not storage.chunks:
            notes.append(f"{path}: {unchecked} of {len(storage.chunks)} chunks carry no CRC")
    return Integrity(verified, _unverifiable("; ".join(notes)))


def _check_chunk(file: BinaryIO, chunk: ChunkInfo, name: str, storage: McapReader) -> bool:
    """True when ``chunk`` carries a CRC and matches it, False when it carries none (CRC 0).

    The chunk is located through the file's chunk index, as rosbags does when it reads it.
    """
    topics = sorted(storage.channels[c].topic for c in chunk.channel_count if c in storage.channels)
    where = f"{name} at byte {chunk.chunk_start_offset} ({', '.join(topics) or 'topics unknown'})"
    try:
        file.seek(chunk.chunk_start_offset + CHUNK_CRC_AT)
        (crc,) = U32.unpack(file.read(U32.size))
        if crc == 0:
            return False
        file.seek(len(chunk.compression.encode()) + 4 + 8, 1)  # the compression name and the data's size
        decompress(file.read(chunk.compressed_size), chunk.compression, chunk.uncompressed_size, crc)
    except Exception as exc:  # a CRC mismatch, a short read, a decompressor's failure: all damage
        raise BagError(f"{where} is damaged: {exc}") from exc
    return True


def _verify_sqlite(bag: Path, reader: Reader, files: list[Path]) -> Integrity:
    """The messages' CRC sums against the record make-bag kept; no record: unverifiable."""
    text = (reader.storage.metadata.custom or {}).get(CRC_KEY)
    if text is None:
        return Integrity(0, _unverifiable(f"{bag}: sqlite3 bag without the {CRC_KEY} record"))
    recorded = MessageCrcs.parse(text, bag)
    found = MessageCrcs()
    names = ", ".join(str(f) for f in files)
    try:
        for connection, log_time, data in reader.messages(reader.connections):
            found.add(connection.topic, log_time, data)
    except Exception as exc:  # sqlite and decompression errors from a damaged file
        raise BagError(f"{names}: the database is damaged and could not be read to the end ({exc})") from exc
    damaged = recorded.differences(found)
    if damaged:
        topic, window = damaged[0]
        start, end = (max(0, edge * WINDOW_NS - reader.start_time) * 1e-9 for edge in (window, window + 1))
        others = f"; {len(damaged) - 1} more topic-seconds differ" if len(damaged) > 1 else ""
        raise BagError(
            f"{names}: messages of {topic} logged {start:.2f}–{end:.2f} s into the bag do not match "
            f"their recorded CRCs (damaged or changed since the bag was written){others}"
        )
    return Integrity(recorded.entries())


def _unverifiable(notes: str) -> str:
    return f"{notes}: written without checksums, so damage inside a message cannot be detected" if notes else ""
