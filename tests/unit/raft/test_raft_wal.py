"""The write-ahead log and DiskStorage: round trips, compaction, torn writes, corruption, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shoal.plugins.raft.disk_storage import DiskStorage
from shoal.plugins.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Ready,
    Snapshot,
    SnapshotMetadata,
)
from shoal.plugins.raft.wal import ClusterMismatch, WalCorrupted

CONF = ConfState(voters=(1, 2, 3))


def open_storage(root: Path, **kw: int) -> DiskStorage:
    return DiskStorage.open(root, "c1", 1, **kw)


def entries(lo: int, hi: int, term: int = 1, size: int = 10) -> list[Entry]:
    return [Entry(term, i, bytes([i % 256]) * size) for i in range(lo, hi)]


def save(storage: DiskStorage, ents: list[Entry], hs: HardState | None = None) -> None:
    storage.save(Ready(entries=ents, hard_state=hs, must_sync=True))


def segments(root: Path) -> list[Path]:
    return sorted((root / "wal").iterdir())


def test_round_trip_with_overwrite_and_hard_state(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    save(s, entries(1, 11), HardState(1, 1, 5))
    save(s, entries(8, 12, term=2), HardState(2, 0, 7))  # a new leader replaced 8..10
    s.close()
    again = open_storage(tmp_path)
    assert again.initial_state() == (HardState(2, 0, 7), ConfState())
    assert again.last_index() == 11
    assert [e.term for e in again.entries(1, 12)] == [1] * 7 + [2] * 4
    assert again.entries(3, 4) == entries(3, 4)
    again.close()


def test_segments_roll_over_and_snapshot_compacts_them(tmp_path: Path) -> None:
    s = open_storage(tmp_path, segment_bytes=4096)
    for lo in range(1, 401, 20):
        save(s, entries(lo, lo + 20, size=100))
    assert len(segments(tmp_path)) > 5
    before = len(segments(tmp_path))
    s.create_snapshot(300, CONF, b"state at 300")
    s.compact(300)
    assert len(segments(tmp_path)) < before
    s.close()
    again = open_storage(tmp_path, segment_bytes=4096)
    assert again.snapshot().data == b"state at 300" and again.snapshot().index == 300
    assert again.first_index() == 301 and again.last_index() == 400
    assert again.entries(301, 401) == entries(301, 401, size=100)
    again.close()


def test_snapshot_from_leader_replaces_the_log(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    save(s, entries(1, 6))
    snap = Snapshot(SnapshotMetadata(50, 3, CONF), b"leader state")
    s.save(Ready(snapshot=snap, hard_state=HardState(3, 0, 50), must_sync=True))
    save(s, entries(51, 53, term=3))
    s.close()
    again = open_storage(tmp_path)
    assert again.first_index() == 51 and again.last_index() == 52
    assert again.snapshot() == snap
    again.close()


@pytest.mark.parametrize("cut", [1, 5, 13, 30])
def test_torn_last_record_is_truncated(tmp_path: Path, cut: int) -> None:
    s = open_storage(tmp_path)
    save(s, entries(1, 10))
    s.close()
    (seg,) = segments(tmp_path)
    size = seg.stat().st_size
    os.truncate(seg, size - cut)  # the last entry record (34 + 10 bytes) was torn
    again = open_storage(tmp_path)
    assert again.last_index() == 9 - 1
    assert again.replayed.truncated > 0
    save(again, entries(9, 12))  # appends continue where the good data ends
    again.close()
    assert open_storage(tmp_path).last_index() == 11


def test_garbled_last_record_is_truncated(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    save(s, entries(1, 10))
    s.close()
    (seg,) = segments(tmp_path)
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF  # the tail of the last record never reached the disk intact
    seg.write_bytes(data)
    assert open_storage(tmp_path).last_index() == 8


def test_a_crash_while_creating_a_segment_loses_nothing(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    s.close()
    (first,) = segments(tmp_path)
    os.truncate(first, 0)  # the very first segment, torn before its head reached the disk
    s = open_storage(tmp_path, segment_bytes=1024)
    save(s, entries(1, 40, size=50), HardState(1, 1, 39))  # rolls over to new segments
    s.close()
    newest = segments(tmp_path)[-1]
    os.truncate(newest, 3)  # a rollover torn inside the new segment's head
    s = open_storage(tmp_path, segment_bytes=1024)
    assert s.last_index() == 39
    save(s, entries(40, 41))
    s.create_snapshot(40, CONF, b"s")
    s.compact(40)  # the older segments, and their heads, go away
    s.close()
    again = open_storage(tmp_path, segment_bytes=1024)
    # The commit index follows the snapshot: everything it covers is committed.
    assert (again.first_index(), again.last_index(), again.initial_state()[0]) == (41, 40, HardState(1, 1, 40))


def test_corrupted_older_record_stops_the_node(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    save(s, entries(1, 10))
    s.close()
    (seg,) = segments(tmp_path)
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the middle: not a crash
    seg.write_bytes(data)
    with pytest.raises(WalCorrupted, match=rf"{seg.name} at offset \d+: checksum mismatch") as info:
        open_storage(tmp_path)
    assert info.value.path == seg
    assert seg.read_bytes() == bytes(data), "a corrupt WAL must be left as it is for inspection"


def test_truncated_older_segment_stops_the_node(tmp_path: Path) -> None:
    s = open_storage(tmp_path, segment_bytes=2048)
    for lo in range(1, 200, 10):
        save(s, entries(lo, lo + 10, size=50))
    s.close()
    first = segments(tmp_path)[0]
    os.truncate(first, first.stat().st_size - 3)
    with pytest.raises(WalCorrupted, match="not in the last segment"):
        open_storage(tmp_path, segment_bytes=2048)


def test_corrupted_snapshot_stops_the_node(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    save(s, entries(1, 10))
    s.create_snapshot(9, CONF, b"x" * 100)
    s.close()
    (snap,) = (tmp_path / "snap").iterdir()
    data = bytearray(snap.read_bytes())
    data[-5] ^= 0x10
    snap.write_bytes(data)
    with pytest.raises(WalCorrupted, match="snapshot checksum mismatch"):
        open_storage(tmp_path)


def test_bootstrap_commits_the_founding_membership_once(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    s.bootstrap([3, 1, 2])
    s.bootstrap([1, 2, 3, 4])  # a started log is never bootstrapped again
    s.close()
    again = open_storage(tmp_path)
    founding = again.entries(1, again.last_index() + 1)
    assert [(e.term, e.type, ConfChange.decode(e.data)) for e in founding] == [
        (1, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.ADD_VOTER, n)) for n in (1, 2, 3)
    ]
    assert again.initial_state()[0] == HardState(1, 0, 3)


def test_data_of_another_cluster_or_node_is_refused(tmp_path: Path) -> None:
    open_storage(tmp_path).close()
    with pytest.raises(ClusterMismatch, match="cluster 'c1'.*cluster 'other'"):
        DiskStorage.open(tmp_path, "other", 1)
    with pytest.raises(ClusterMismatch, match="node 1 .* this node is 2"):
        DiskStorage.open(tmp_path, "c1", 2)


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from shoal.plugins.raft.disk_storage import DiskStorage
    from shoal.plugins.raft.messages import Entry, HardState, Ready
    s = DiskStorage.open(Path(sys.argv[1]), "c1", 1, segment_bytes=64 << 10)
    index = s.last_index()
    while True:
        batch = [Entry(1, index + n, b"v%d" % (index + n) * 40) for n in range(1, 8)]
        s.save(Ready(entries=batch, hard_state=HardState(1, 1, index), must_sync=True))
        index += len(batch)
        print(index, flush=True)  # acknowledged: on disk
    """
)


def test_kill_9_of_a_writer_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    for round in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        acked = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            acked = int(line)
            if acked > 300 * (round + 1):
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        s = open_storage(tmp_path, segment_bytes=64 << 10)
        assert s.last_index() >= acked
        got = s.entries(1, s.last_index() + 1)
        assert [e.index for e in got] == list(range(1, s.last_index() + 1))
        assert all(e.data == b"v%d" % e.index * 40 for e in got)
        s.close()


def test_staged_records_are_written_by_the_next_sync_or_by_close(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    size = segments(tmp_path)[-1].stat().st_size
    s.stage(Ready(entries=entries(1, 4), hard_state=HardState(1, 1, 0), must_sync=True))
    assert s.last_index() == 3 and segments(tmp_path)[-1].stat().st_size == size  # no I/O yet
    s.sync()
    s.stage(Ready(hard_state=HardState(1, 1, 3)))  # a commit index alone waits for the next write
    s.close()
    again = open_storage(tmp_path)
    assert again.initial_state()[0] == HardState(1, 1, 3) and again.entries(1, 4) == entries(1, 4)
    again.close()
