"""Rosbag2 in and out through ``rosbags``: sqlite3 and mcap, no ROS install needed.

Messages are (de)serialised with the ROS 2 Jazzy type store, so a bag written here plays
with ``ros2 bag play`` and a bag recorded on a robot reads here. Reading failures (not a
bag, truncated file, corrupt chunk) become :class:`~binseg_ros.errors.BagError` with the
path, so the CLI exits with a message instead of a stack trace or a silently short run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.typesys import Stores, get_typestore

from binseg_ros.bags.checksums import CRC_KEY, ChecksummedWriter, MessageCrcs
from binseg_ros.core.compressed import encode
from binseg_ros.core.messages import image_fields
from binseg_ros.errors import BagError

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)  # what an image or label topic may hold
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
_Image = TYPESTORE.types[IMAGE]
_CompressedImage = TYPESTORE.types[COMPRESSED_IMAGE]
_Header = TYPESTORE.types["std_msgs/msg/Header"]
_Time = TYPESTORE.types["builtin_interfaces/msg/Time"]


def image_message(array: np.ndarray, encoding: str, stamp: int, frame_id: str = "camera") -> Any:
    """A ``sensor_msgs/Image`` (rosbags type) holding ``array``, stamped ``stamp`` ns."""
    return _Image(header=_header(stamp, frame_id), **image_fields(array, encoding))


def compressed_message(
    array: np.ndarray, encoding: str, stamp: int, transport: str, frame_id: str = "camera", codec: str | None = None
) -> Any:
    """A ``sensor_msgs/CompressedImage`` (rosbags type): ``array`` in ``encoding`` as image_transport's
    ``transport`` plugin publishes it (:func:`binseg_ros.core.compressed.encode`), stamped ``stamp`` ns."""
    fmt, data = encode(array, encoding, transport, codec)
    return _CompressedImage(header=_header(stamp, frame_id), format=fmt, data=np.frombuffer(data, np.uint8))


def _header(stamp: int, frame_id: str) -> Any:
    return _Header(stamp=_Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000), frame_id=frame_id)


class BagWriter:
    """Writes typed messages to a new rosbag2 folder; a context manager that always closes.

    The bag is written in a hidden sibling folder (``.<name>.*.partial``) and renamed to its
    path only once it is closed whole. Leaving the ``with`` block on an exception (an
    unreadable image half-way through ``make-bag``, Ctrl-C, a node that never came up) aborts
    the storage and deletes that folder: a cut-short bag would otherwise read as a whole one,
    and its folder would block the re-run (rosbag2 only writes new folders). A process killed
    outright leaves only the hidden folder, which blocks nothing.

    Every bag carries checksums (:mod:`binseg_ros.bags.checksums`): CRCs in its mcap chunks,
    or, for sqlite3, the messages' CRC record in metadata.yaml.
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown storage {storage!r}; expected one of {', '.join(STORAGES)}")
        self.path = Path(path)
        self._refuse_existing()
        self._storage = STORAGES[storage]
        self._crcs = MessageCrcs() if self._storage is StoragePlugin.SQLITE3 else None
        self._connections: dict[str, Any] = {}

    def _refuse_existing(self) -> None:
        if self.path.exists():
            raise BagError(f"{self.path} already exists; rosbag2 writes a new folder: remove it or choose another")

    def __enter__(self) -> BagWriter:
        try:  # before the first message is made: make-bag fails before reading any image
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staging = tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
        except OSError as exc:
            raise BagError(f"{self.path}: cannot write a bag there ({exc.strerror or exc})") from exc
        self._staging = Path(staging)
        self._writer = ChecksummedWriter(self._staging / self.path.name, version=9, storage_plugin=self._storage)
        try:
            self._writer.open()
        except BaseException:
            shutil.rmtree(self._staging, ignore_errors=True)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # rosbags' own __exit__: close (metadata.yaml) on success; abort the storage on an
        # exception, or when closing itself fails, which it then re-raises.
        try:
            if kind is None and self._crcs is not None:
                self._writer.set_custom_data(CRC_KEY, self._crcs.annotation())
            self._writer.__exit__(kind, exc, tb)
            if kind is None:
                self._refuse_existing()  # made by someone else while this bag was written
                (self._staging / self.path.name).rename(self.path)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)

    def write(self, topic: str, log_time: int, msg: Any) -> None:
        """``msg`` at receive time ``log_time`` ns (the time ``ros2 bag play`` replays it at)."""
        self.write_raw(topic, msg.__msgtype__, log_time, TYPESTORE.serialize_cdr(msg, msg.__msgtype__))

    def annotate(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` in metadata.yaml's ``custom_data`` (written on close): a fact
        about the recording that travels with the bag and that ``ros2 bag`` tools leave alone."""
        self._writer.set_custom_data(key, value)

    def write_raw(self, topic: str, msgtype: str, log_time: int, data: bytes | memoryview) -> None:
        """An already serialised (CDR) message, e.g. one recorded off a live topic."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        self._writer.write(self._connections[topic], log_time, data)
        if self._crcs is not None:
            self._crcs.add(topic, log_time, data)


@dataclass(frozen=True)
class BagMessage:
    topic: str
    log_time: int  # ns, when the recorder received it
    msg: Any  # deserialised rosbags message; None if it could not be decoded
    raw: bytes | memoryview  # the CDR bytes as the storage returned them (no copy)


def bag_topics(path: str | Path) -> dict[str, str]:
    """Topic → message type of the bag at ``path``."""
    with open_bag(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def require_images(path: str | Path, types: Mapping[str, str], topics: Iterable[str]) -> None:
    """Refuse a topic of ``topics`` whose type (``types``: the bag's :func:`bag_topics`) is no image:
    its messages have no pixels, and reading them as images would fail mid-run.

    Raises:
        BagError: naming the topic, its type and the types expected.
    """
    for topic in topics:
        if types[topic] not in IMAGE_TYPES:
            raise BagError(f"{path}: topic {topic} is {types[topic]}; expected {' or '.join(IMAGE_TYPES)}")


def bag_span(path: str | Path, topics: Iterable[str] | None = None) -> tuple[int, int, int]:
    """(start ns, end ns, message count of ``topics`` or of all) from the bag's metadata."""
    with open_bag(path) as reader:
        wanted = set(topics) if topics is not None else None
        count = sum(c.msgcount for c in reader.connections if wanted is None or c.topic in wanted)
        return reader.start_time, reader.end_time, count


def bag_annotations(path: str | Path) -> dict[str, str]:
    """The ``custom_data`` of the bag's metadata.yaml (what :meth:`BagWriter.annotate` kept)."""
    with open_bag(path) as reader:
        return dict(reader.storage.metadata.custom or {})


def read_messages(path: str | Path, topics: Iterable[str]) -> Iterator[BagMessage]:
    """Messages of ``topics`` in receive order. A message that does not decode comes with
    ``msg=None`` for the caller to count; a storage-level failure raises BagError."""
    wanted = set(topics)
    with open_bag(path) as reader:
        connections = [c for c in reader.connections if c.topic in wanted]
        if not connections:
            return  # rosbags reads every topic when given none
        try:
            for connection, log_time, raw in reader.messages(connections=connections):
                try:
                    msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
                except Exception:  # noqa: BLE001 - any decoding failure is one counted bad message
                    msg = None
                yield BagMessage(connection.topic, log_time, msg, raw)
        except Exception as exc:  # sqlite/mcap/zstd errors from a damaged file mid-read
            raise BagError(f"{path}: the bag is damaged and could not be read to the end ({exc})") from exc


class open_bag:
    """``Reader`` opened with errors turned into BagError naming the path."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __enter__(self) -> Reader:
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:
            raise BagError(f"{self.path}: not a readable rosbag2 ({exc})") from exc
        return self._reader

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._reader.close()
