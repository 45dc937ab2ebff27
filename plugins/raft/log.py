"""A node's view of the Raft log: the stable part in ``Storage`` plus entries not yet persisted."""

from __future__ import annotations

from .errors import EntryUnavailable, LogCompacted
from .messages import Entry, Snapshot
from .storage import Storage, limit_size


class Unstable:
    """Entries (and possibly a snapshot) received but not yet handed to the driver for persisting.

    ``offset`` is the index of ``entries[0]``; a pending snapshot, if any, ends at ``offset - 1``.
    """

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.entries: list[Entry] = []
        self.snapshot: Snapshot | None = None

    def first_index(self) -> int | None:
        return self.snapshot.index + 1 if self.snapshot is not None else None

    def last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        return self.snapshot.index if self.snapshot is not None else None

    def term(self, index: int) -> int | None:
        if index < self.offset:
            if self.snapshot is not None and self.snapshot.index == index:
                return self.snapshot.term
            return None
        last = self.last_index()
        if last is None or index > last:
            return None
        return self.entries[index - self.offset].term

    def stable_to(self, index: int, term: int) -> None:
        """The driver persisted entries up to ``index``; keep them only if they were not replaced since."""
        if self.term(index) == term and index >= self.offset:
            del self.entries[: index + 1 - self.offset]
            self.offset = index + 1

    def stable_snapshot_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.index == index:
            self.snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        self.offset = snapshot.index + 1
        self.entries = []
        self.snapshot = snapshot

    def truncate_and_append(self, entries: list[Entry]) -> None:
        first = entries[0].index
        if first == self.offset + len(self.entries):
            self.entries.extend(entries)
        elif first <= self.offset:
            # Replaces everything unstable (and some persisted entries: the storage write truncates).
            self.offset = first
            self.entries = list(entries)
        else:
            del self.entries[first - self.offset :]
            self.entries.extend(entries)


class RaftLog:
    """Log access for the state machine: terms, slices, appends, conflict search, commit and apply marks."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        first, last = storage.first_index(), storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1

    def first_index(self) -> int:
        first = self.unstable.first_index()
        return first if first is not None else self.storage.first_index()

    def last_index(self) -> int:
        last = self.unstable.last_index()
        return last if last is not None else self.storage.last_index()

    def term(self, index: int) -> int:
        """The entry's term; 0 past the end. Raises ``LogCompacted`` below the retained log."""
        if index < self.first_index() - 1:
            raise LogCompacted(f"log index {index} was compacted")
        if index > self.last_index():
            return 0
        term = self.unstable.term(index)
        if term is not None:
            return term
        return self.storage.term(index)

    def term_or_none(self, index: int) -> int | None:
        try:
            return self.term(index)
        except (LogCompacted, EntryUnavailable):
            return None

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        return self.term_or_none(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """§5.4.1: a log is at least as up to date if its last term is higher, or equal with an index as long."""
        own_term = self.last_term()
        return last_term > own_term or (last_term == own_term and last_index >= self.last_index())

    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``[lo, hi)`` within ``max_bytes`` (at least one); raises ``LogCompacted`` if ``lo`` is gone."""
        if lo < self.first_index():
            raise LogCompacted(f"log index {lo} was compacted")
        if hi > self.last_index() + 1:
            raise EntryUnavailable(f"log index {hi - 1} is past the last index {self.last_index()}")
        if lo >= hi:
            return []
        result: list[Entry] = []
        uoff = self.unstable.offset
        if lo < uoff:
            result = self.storage.entries(lo, min(hi, uoff), max_bytes)
            if len(result) < min(hi, uoff) - lo:
                return result  # cut short by the byte budget
        if hi > uoff:
            start = max(lo, uoff)
            result = result + self.unstable.entries[start - uoff : hi - uoff]
        return limit_size(result, max_bytes)

    def entries_from(self, lo: int, max_bytes: int | None = None) -> list[Entry]:
        if lo > self.last_index():
            return []
        return self.slice(lo, self.last_index() + 1, max_bytes)

    def find_conflict(self, entries: tuple[Entry, ...] | list[Entry]) -> int:
        """The index of the first entry whose term differs from ours (or that we lack); 0 if none."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= ``index`` whose term is <= ``term``, and that term.

        A leader probing at (index, term) can skip every entry of ours with a larger term: none of
        them can match, so a rejection jumps back a whole term at a time instead of one entry.
        """
        while index > 0:
            own = self.term_or_none(index)
            if own is None:
                break  # compacted: the snapshot's index is as far back as it goes
            if own <= term:
                return index, own
            index -= 1
        return index, self.term_or_none(index) or 0

    def maybe_append(self, index: int, log_term: int, committed: int, entries: tuple[Entry, ...]) -> int | None:
        """Append what follows (index, log_term) if our log matches there; the new last index, else None."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise AssertionError(f"entry {conflict} conflicts with committed entry (commit {self.committed})")
            self.append(list(entries[conflict - index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, entries: list[Entry]) -> int:
        if entries:
            if entries[0].index - 1 < self.committed:
                raise AssertionError(f"appending after {entries[0].index - 1} would rewrite committed entries")
            self.unstable.truncate_and_append(entries)
        return self.last_index()

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(f"commit index {index} is past the last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Advance the commit index to a quorum-replicated ``index`` only if it is from ``term`` (§5.4.2)."""
        if index > self.committed and self.term_or_none(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index:
            self.applied = max(self.applied, index)

    def has_next_committed(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed(self, max_bytes: int | None = None) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 > lo:
            return self.slice(lo, self.committed + 1, max_bytes)
        return []

    def restore(self, snapshot: Snapshot) -> None:
        self.committed = snapshot.index
        self.unstable.restore(snapshot)
