"""What a leader knows about each follower's log, and how much it may send it without an answer."""

from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.Enum):
    #: Unknown match: send one append at a time and wait for the answer (or a heartbeat reply).
    PROBE = "probe"
    #: Known match: stream appends optimistically, bounded by the in-flight window.
    REPLICATE = "replicate"
    #: The needed entries were compacted: a snapshot is on its way; send nothing until it lands.
    SNAPSHOT = "snapshot"


class Inflights:
    """Append messages sent but not yet acknowledged, by the last index each carried (oldest first)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._last_indexes: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._last_indexes)

    def full(self) -> bool:
        return len(self._last_indexes) >= self.capacity

    def add(self, last_index: int) -> None:
        if self.full():
            raise AssertionError("no room for another in-flight append")
        self._last_indexes.append(last_index)

    def free_le(self, index: int) -> None:
        """An acknowledgment up to ``index`` frees every message that ended at or before it."""
        while self._last_indexes and self._last_indexes[0] <= index:
            self._last_indexes.popleft()

    def free_first(self) -> None:
        if self._last_indexes:
            self._last_indexes.popleft()

    def reset(self) -> None:
        self._last_indexes.clear()


class Progress:
    """The leader's record of one peer: ``match`` is known replicated, ``next`` is what to send next."""

    def __init__(self, next_index: int, max_inflight: int, *, learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.recent_active = False
        self.learner = learner
        self.inflights = Inflights(max_inflight)

    def __repr__(self) -> str:
        return f"Progress(match={self.match}, next={self.next}, state={self.state.value}, learner={self.learner})"

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            # Resume right after the snapshot, if it got through, or after what is known to match.
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """An acknowledgment up to ``index``; False if it is stale."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def optimistic_update(self, last_sent: int) -> None:
        self.next = last_sent + 1

    def maybe_decrease_to(self, rejected: int, hint: int) -> bool:
        """The follower rejected the append probing at ``rejected``; back off towards ``hint``.

        False if the rejection is stale (answers an older probe than the current one).
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True
