"""Bag integrity on real MM5 frames: make-bag writes checksums, evaluate and replay refuse a damaged
bag with one line naming the damaged chunk, read a bag without checksums after a warning, and a
failed make-bag leaves nothing behind and says how to choose frames."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer
from rosbags.rosbag2.enums import StoragePlugin

from binseg_ros.bags.integrity import verify_bag
from binseg_ros.bags.io import TYPESTORE, read_messages
from binseg_ros.cli import main
from binseg_ros.errors import BagError
from binseg_ros.training.split import SPLITS, load_split

GARBAGE = np.random.default_rng(0).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes()
SIZE = "240x320"  # an rgb8 image of 230,400 bytes: 64 KiB of garbage fits inside one


def _make_bag(mm5_root: Path, bag: Path, *flags: str) -> Path:
    assert main(["make-bag", "--data", str(mm5_root), "--out", str(bag), "--limit", "4", "--size", SIZE, *flags]) == 0
    return bag


@pytest.fixture(scope="module")
def mcap_bag(mm5_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_bag(mm5_root, tmp_path_factory.mktemp("integrity") / "bag")


def _first_payload(bag: Path, topic: str) -> bytes:
    """The CDR bytes of the first message on ``topic``."""
    return bytes(next(iter(read_messages(bag, [topic]))).raw)


def _garbled(payload: bytes) -> bytes:
    """``payload`` with 64 KiB of garbage written over the end of its image data."""
    end = len(payload) - 16
    return payload[: end - len(GARBAGE)] + GARBAGE + payload[end:]


def test_make_bag_writes_chunk_crcs_and_a_clean_bag_evaluates(mcap_bag, tmp_path, capsys):
    integrity = verify_bag(mcap_bag)
    assert integrity.verified >= 3 and integrity.unverifiable == ""  # ~1 MiB chunks of a ~3 MiB bag
    capsys.readouterr()
    assert main(["evaluate", "--bag", str(mcap_bag), "--out", str(tmp_path / "report")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_garbage_in_an_image_payload_stops_evaluate_and_replay(mcap_bag, tmp_path, capsys):
    damaged = tmp_path / "damaged"
    shutil.copytree(mcap_bag, damaged)
    data_file = next(damaged.glob("*.mcap"))
    content = data_file.read_bytes()
    payload = _first_payload(damaged, "/rgb/image")
    at = content.index(payload)  # chunks are not compressed: the payload is in the file as it is
    data_file.write_bytes(content[:at] + _garbled(payload) + content[at + len(payload) :])

    for verb in ("evaluate", "replay"):
        capsys.readouterr()
        assert main([verb, "--bag", str(damaged), "--out", str(tmp_path / verb)]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1, err
        assert err.startswith(f"binseg {verb}: error: {data_file}: chunk ") and "Chunk checksum mismatch" in err
        chunk_at = int(err.split(" at byte ")[1].split()[0])
        assert chunk_at <= at and "/rgb/image" in err.split(" at byte ")[1]
        assert not (tmp_path / verb).exists()  # stopped before any report or recording
    # The CRCs are the format's own: rosbags' reader checks them too.
    with pytest.raises(BagError, match="Chunk checksum mismatch"):
        list(read_messages(damaged, ["/rgb/image"]))


def test_a_changed_sqlite3_payload_is_named_by_file_topic_and_time(mm5_root, tmp_path, capsys):
    bag = _make_bag(mm5_root, tmp_path / "bag", "--storage", "sqlite3")
    assert verify_bag(bag).verified > 0 and verify_bag(bag).unverifiable == ""
    database = next(bag.glob("*.db3"))
    with closing(sqlite3.connect(database)) as db, db:  # a row rewritten in place: the database stays valid
        row, payload = db.execute(
            "SELECT messages.id, data FROM messages JOIN topics ON topics.id = topic_id "
            "WHERE topics.name = '/rgb/image' ORDER BY timestamp LIMIT 1"
        ).fetchone()
        db.execute("UPDATE messages SET data = ? WHERE id = ?", (_garbled(payload), row))
    capsys.readouterr()
    assert main(["evaluate", "--bag", str(bag), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"binseg evaluate: error: {database}: messages of /rgb/image logged 0.00–1.00 s into")
    assert len(err.splitlines()) == 1, err


def _rewritten_by_rosbags(source: Path, target: Path, storage: StoragePlugin) -> Path:
    """``source`` copied by rosbags' own writer: mcap chunks with CRC 0, sqlite3 without a CRC record."""
    with Reader(source) as reader, Writer(target, version=9, storage_plugin=storage) as writer:
        connections = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=TYPESTORE) for c in reader.connections}
        for connection, log_time, raw in reader.messages():
            writer.write(connections[connection.id], log_time, raw)
    return target


def test_a_bag_without_checksums_is_unverifiable_and_still_evaluates(mcap_bag, tmp_path, capsys):
    plain = _rewritten_by_rosbags(mcap_bag, tmp_path / "plain", StoragePlugin.MCAP)
    integrity = verify_bag(plain)
    assert integrity.verified == 0 and "chunks carry no CRC" in integrity.unverifiable
    sqlite = verify_bag(_rewritten_by_rosbags(mcap_bag, tmp_path / "plain_sqlite", StoragePlugin.SQLITE3))
    assert sqlite.verified == 0 and "without the binseg.message_crc32 record" in sqlite.unverifiable
    capsys.readouterr()
    assert main(["evaluate", "--bag", str(plain), "--out", str(tmp_path / "report")]) == 0
    err = capsys.readouterr().err
    assert f"binseg evaluate: warning: {next(plain.glob('*.mcap'))}: " in err and "cannot be detected" in err
    assert (tmp_path / "report" / "report.md").exists()


def _folder_of(mm5_root: Path, ids: list[str], root: Path) -> Path:
    """A dataset folder with only ``ids`` of MM5 (links to its images)."""
    for sub in ("RGB", "Depth", "Thermal", "Class_Annotations"):
        (root / sub).mkdir(parents=True)
        for frame in ids:
            (root / sub / f"{frame}.png").symlink_to(mm5_root / sub / f"{frame}.png")
    return root


def test_a_failed_make_bag_leaves_nothing_and_says_how_to_choose_frames(mm5_root, tmp_path, capsys):
    data = _folder_of(mm5_root, ["1", "2", "3"], tmp_path / "data")  # training frames of the default split
    bag = tmp_path / "bag"
    make = ["make-bag", "--data", str(data), "--out", str(bag), "--size", "120x160"]
    held_out = load_split(SPLITS / "mm5.yaml").held_out_ids()
    assert main(make) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert f"held-out frames of split {SPLITS / 'mm5.yaml'} are not in {data / 'RGB'} (ids {held_out[0]}, " in err
    assert "--frames all writes every frame of the folder" in err
    assert list(tmp_path.iterdir()) == [data]

    depth = data / "Depth" / "3.png"
    depth.unlink()  # frame 3 fails after frames 1 and 2 are written
    assert main([*make, "--frames", "all"]) == 2
    assert f"cannot read image {depth}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [data]  # neither the bag nor its staging folder

    depth.symlink_to(mm5_root / "Depth" / "3.png")
    assert main([*make, "--frames", "all"]) == 0  # the re-run is not blocked
    assert "3 frames" in capsys.readouterr().out and verify_bag(bag).unverifiable == ""
    assert main([*make, "--frames", "all"]) == 2
    assert f"{bag} already exists" in capsys.readouterr().err
