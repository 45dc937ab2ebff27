"""MemoryStorage and the log layered over it."""

from __future__ import annotations

import pytest

from shoal.plugins.raft.errors import EntryUnavailable, LogCompacted, SnapshotOutOfDate
from shoal.plugins.raft.log import RaftLog
from shoal.plugins.raft.messages import ConfState, Entry, Snapshot, SnapshotMetadata
from shoal.plugins.raft.storage import MemoryStorage, limit_size


def entries(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(term=t, index=start + i, data=b"%d" % (start + i)) for i, t in enumerate(terms)]


def test_append_replaces_conflicting_suffix() -> None:
    s = MemoryStorage()
    s.append(entries(1, 1, 1))
    s.append(entries(2, 2, start=2))
    assert [s.term(i) for i in (1, 2, 3)] == [1, 2, 2]
    with pytest.raises(EntryUnavailable, match="gap"):
        s.append(entries(3, start=9))


def test_compaction_and_snapshots() -> None:
    s = MemoryStorage(ConfState(voters=(1,)))
    s.append(entries(1, 1, 2, 2, 3))
    snap = s.create_snapshot(3, ConfState(voters=(1, 2)), b"state")
    assert (snap.index, snap.term) == (3, 2)
    s.compact(3)
    assert (s.first_index(), s.last_index()) == (4, 5)
    assert s.term(3) == 2  # the term just before the first entry stays known
    with pytest.raises(LogCompacted):
        s.term(2)
    with pytest.raises(LogCompacted):
        s.entries(3, 5)
    with pytest.raises(EntryUnavailable, match="only covers 3"):
        s.compact(4)
    with pytest.raises(SnapshotOutOfDate):
        s.create_snapshot(2, ConfState(), b"")
    assert s.initial_state()[1] == ConfState(voters=(1, 2))


def test_apply_snapshot_replaces_the_log() -> None:
    s = MemoryStorage()
    s.append(entries(1, 1))
    s.apply_snapshot(Snapshot(SnapshotMetadata(index=10, term=4), b"x"))
    assert (s.first_index(), s.last_index(), s.term(10)) == (11, 10, 4)
    with pytest.raises(SnapshotOutOfDate):
        s.apply_snapshot(Snapshot(SnapshotMetadata(index=5, term=3)))


def test_entries_respect_byte_budget_but_return_at_least_one() -> None:
    s = MemoryStorage()
    s.append([Entry(1, i, b"x" * 100) for i in range(1, 6)])
    size = s.entries(1, 2)[0].size()
    assert len(s.entries(1, 6, max_bytes=2 * size)) == 2
    assert len(s.entries(1, 6, max_bytes=1)) == 1
    assert limit_size([], 0) == []


def test_log_combines_storage_and_unstable_entries() -> None:
    s = MemoryStorage()
    s.append(entries(1, 1, 1))
    log = RaftLog(s)
    log.append(entries(2, 2, start=3))  # replaces stored index 3
    assert [log.term(i) for i in range(1, 5)] == [1, 1, 2, 2]
    assert [e.index for e in log.slice(2, 5)] == [2, 3, 4]
    assert log.term(9) == 0
    log.unstable.stable_to(4, 2)
    assert log.unstable.entries == []


def test_find_conflict_by_term_skips_whole_terms() -> None:
    s = MemoryStorage()
    s.append(entries(1, 1, 3, 3, 3, 5, 5))
    log = RaftLog(s)
    assert log.find_conflict_by_term(7, 4) == (5, 3)
    assert log.find_conflict_by_term(7, 2) == (2, 1)
    assert log.find_conflict_by_term(7, 5) == (7, 5)


def test_commit_only_for_current_term() -> None:
    s = MemoryStorage()
    s.append(entries(1, 2))
    log = RaftLog(s)
    assert not log.maybe_commit(2, 3)
    assert log.maybe_commit(2, 2) and log.committed == 2


def test_is_up_to_date() -> None:
    s = MemoryStorage()
    s.append(entries(1, 2, 2))
    log = RaftLog(s)
    assert log.is_up_to_date(3, 2) and log.is_up_to_date(1, 3)
    assert not log.is_up_to_date(2, 2) and not log.is_up_to_date(9, 1)
