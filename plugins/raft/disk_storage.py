"""``DiskStorage``: the Raft ``Storage`` kept in memory for reads and made durable by the WAL.

Every entry since the latest snapshot is held in memory (compaction bounds how many); every
change first goes to the WAL. The driver calls ``save`` with each ``Ready`` before sending its
messages, so nothing is acknowledged to a peer or a client before it is on disk.
"""

from __future__ import annotations

from pathlib import Path

from .messages import ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Ready, Snapshot, SnapshotMetadata
from .storage import MemoryStorage
from .wal import Replayed, Wal


class DiskStorage(MemoryStorage):
    """A node's durable log, hard state and snapshot; open with ``DiskStorage.open``."""

    def __init__(self, wal: Wal, replayed: Replayed) -> None:
        super().__init__()
        self.wal = wal
        self.replayed = replayed
        if replayed.snapshot is not None:
            super().apply_snapshot(replayed.snapshot)
        elif replayed.base[0]:
            raise AssertionError("a WAL base without a snapshot")  # replay derives base from the snapshot
        super().append(replayed.entries)
        self.hard_state = replayed.hard_state
        if self.hard_state.commit < self.first_index() - 1:
            self.hard_state = HardState(self.hard_state.term, self.hard_state.vote, self.first_index() - 1)

    @classmethod
    def open(cls, root: Path, cluster_id: str, node_id: int, *, segment_bytes: int = 16 << 20) -> DiskStorage:
        """Open or create the storage in ``root``; raises ``WalCorrupted`` or ``ClusterMismatch``."""
        wal, replayed = Wal.open(root, cluster_id, node_id, segment_bytes=segment_bytes)
        return cls(wal, replayed)

    def bootstrap(self, voters: list[int]) -> None:
        """Start a new cluster's log, unless this one has begun: one committed ADD_VOTER per member.

        Every founding member writes the same entries (so ``voters`` must be the same list on
        each), and the membership lives in the log like any later change: a node that joins
        later learns the founders from it.
        """
        if self.last_index() or self.snapshot().index or self.hard_state != HardState():
            return
        entries = [Entry(1, n, ConfChange(ConfChangeType.ADD_VOTER, voter).encode(), EntryType.CONF_CHANGE)
                   for n, voter in enumerate(sorted(voters), start=1)]  # fmt: skip
        self.save(Ready(entries=entries, hard_state=HardState(1, 0, len(entries)), must_sync=True))

    def save(self, rd: Ready) -> None:
        """Persist a Ready's snapshot, entries and hard state; fsync once if it must be synced."""
        if rd.snapshot is not None:
            self.wal.save_snapshot(rd.snapshot)
            self.wal.set_base(rd.snapshot.index, rd.snapshot.term)
            super().apply_snapshot(rd.snapshot)
        self.stage(rd)
        self.wal.flush(sync=rd.must_sync)

    def stage(self, rd: Ready) -> None:
        """Queue a Ready's entries and hard state as WAL records, without I/O; ``sync`` writes them.

        Encoding is CPU work: done by the caller's thread, a thread that then only writes and
        fsyncs never holds the interpreter lock for long. A Ready's snapshot is left to ``save``.
        """
        if rd.entries:
            self.wal.append_entries(rd.entries)
            super().append(rd.entries)
        if rd.hard_state is not None:
            self.wal.set_hard_state(rd.hard_state)
            self.hard_state = rd.hard_state

    def sync(self) -> None:
        """Write what ``stage`` queued and fsync it."""
        self.wal.flush(sync=True)

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Make a snapshot of the applied state at ``index`` durable, then serve it to followers."""
        snapshot = Snapshot(SnapshotMetadata(index, self.term(index), conf_state), data)
        self.write_snapshot(snapshot)
        self.adopt_snapshot(snapshot)
        return snapshot

    def write_snapshot(self, snapshot: Snapshot) -> None:
        """Write a snapshot's file durably; it touches no state ``save`` uses, so it may run beside it."""
        self.wal.save_snapshot(snapshot)

    def adopt_snapshot(self, snapshot: Snapshot) -> None:
        """Serve a snapshot written by ``write_snapshot`` (unless a newer one arrived meanwhile)."""
        if snapshot.index > self.snapshot().index:
            super().create_snapshot(snapshot.index, snapshot.metadata.conf_state, snapshot.data)

    def compact(self, index: int) -> None:
        """Drop the entries up to ``index`` (covered by a durable snapshot) from memory and disk."""
        self.forget(index)
        self.release(index)

    def forget(self, index: int) -> None:
        """Drop the entries up to ``index`` from memory (not beside ``save``)."""
        super().compact(index)

    def release(self, index: int) -> None:
        """Delete the WAL segments holding only entries up to ``index`` (may run beside ``save``)."""
        self.wal.release_to(index)

    def close(self) -> None:
        self.wal.close()
