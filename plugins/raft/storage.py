"""Where a node's log, hard state and snapshot live: the ``Storage`` protocol and ``MemoryStorage``.

Raft reads storage; the driver writes it while processing a ``Ready`` (persist entries, hard
state and snapshots before sending that Ready's messages). The durable WAL implements the same
protocol.
"""

from __future__ import annotations

from typing import Protocol

from .errors import EntryUnavailable, LogCompacted, SnapshotOutOfDate
from .messages import ConfState, Entry, HardState, Snapshot, SnapshotMetadata


class Storage(Protocol):
    """Read access Raft needs to the stable log."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership of the latest snapshot."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``[lo, hi)``, at least one if any, stopping before ``max_bytes`` is exceeded."""
        ...

    def term(self, index: int) -> int:
        """The term of the entry at ``index``; valid from ``first_index() - 1`` to ``last_index()``."""
        ...

    def first_index(self) -> int:
        """The first index still held as an entry (the snapshot's index + 1)."""
        ...

    def last_index(self) -> int:
        ...

    def snapshot(self) -> Snapshot:
        """The latest snapshot, for a follower whose next entries were compacted away."""
        ...


def limit_size(entries: list[Entry], max_bytes: int | None) -> list[Entry]:
    """The longest prefix within ``max_bytes``, but never empty if ``entries`` is not."""
    if max_bytes is None or not entries:
        return entries
    total = entries[0].size()
    for n in range(1, len(entries)):
        total += entries[n].size()
        if total > max_bytes:
            return entries[:n]
    return entries


class MemoryStorage:
    """``Storage`` in memory. Tests treat it as the durable part of a node that survives a crash."""

    def __init__(self, conf_state: ConfState | None = None) -> None:
        self.hard_state = HardState()
        self._snapshot = Snapshot(SnapshotMetadata(conf_state=conf_state or ConfState()))
        # _ents[0] stands for the snapshot's last entry so term(first_index - 1) is answerable.
        self._ents: list[Entry] = [Entry(term=0, index=0)]

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self._snapshot.metadata.conf_state

    def set_hard_state(self, hard_state: HardState) -> None:
        self.hard_state = hard_state

    def _offset(self) -> int:
        return self._ents[0].index

    def first_index(self) -> int:
        return self._offset() + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def term(self, index: int) -> int:
        offset = self._offset()
        if index < offset:
            raise LogCompacted(f"log index {index} was compacted (first retained entry is {offset + 1})")
        if index - offset >= len(self._ents):
            raise EntryUnavailable(f"log index {index} is past the last index {self.last_index()}")
        return self._ents[index - offset].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        offset = self._offset()
        if lo <= offset:
            raise LogCompacted(f"log index {lo} was compacted (first retained entry is {offset + 1})")
        if hi > self.last_index() + 1:
            raise EntryUnavailable(f"log index {hi - 1} is past the last index {self.last_index()}")
        return limit_size(self._ents[lo - offset : hi - offset], max_bytes)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def append(self, entries: list[Entry]) -> None:
        """Append entries, replacing any existing suffix from the first new index on."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return  # everything is already covered by the snapshot
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        start = entries[0].index - self._offset()
        if start > len(self._ents):
            raise EntryUnavailable(
                f"appending at index {entries[0].index} would leave a gap after last index {self.last_index()}"
            )
        del self._ents[start:]
        self._ents.extend(entries)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log with a snapshot received from the leader."""
        if snapshot.index < self._snapshot.index:
            raise SnapshotOutOfDate(
                f"snapshot at index {snapshot.index} is older than the held one at {self._snapshot.index}"
            )
        self._snapshot = snapshot
        self._ents = [Entry(term=snapshot.term, index=snapshot.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record the application's state as of applied ``index``; entries stay until ``compact``."""
        if index <= self._snapshot.index:
            raise SnapshotOutOfDate(f"a snapshot at index {self._snapshot.index} already covers index {index}")
        if index > self.last_index():
            raise EntryUnavailable(f"snapshot index {index} is past the last index {self.last_index()}")
        term = self._ents[index - self._offset()].term
        self._snapshot = Snapshot(SnapshotMetadata(index=index, term=term, conf_state=conf_state), data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Drop entries up to and including ``index`` (which must be covered by a snapshot)."""
        offset = self._offset()
        if index <= offset:
            return
        if index > self._snapshot.index:
            raise EntryUnavailable(f"cannot compact to {index}: the latest snapshot only covers {self._snapshot.index}")
        kept = self._ents[index - offset :]
        self._ents = [Entry(term=kept[0].term, index=index), *kept[1:]]
