"""Raft's safety properties, checked incrementally while a simulated cluster runs (§5.2, Figure 3).

Each node's persisted log is summarised by a chain hash per index (the hash of the previous
index's chain hash, the term and the data), so equal chain hashes at an index mean equal logs
up to it, and every check costs time proportional to what changed.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from .messages import Entry

if TYPE_CHECKING:
    from .sim import SimNode


class InvariantViolation(AssertionError):
    """A Raft safety property does not hold."""


class SafetyChecker:
    """Raft's safety properties (§5.2, Figure 3), checked incrementally as the cluster runs."""

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}
        self.seen: dict[tuple[int, int], int] = {}
        #: The committed log as observed: chain hashes and terms for indexes 1..n.
        self.committed_chain: list[int] = []
        self.committed_terms: list[int] = []
        self.applied: dict[int, tuple[int, bytes]] = {}
        self.state_hashes: dict[int, int] = {}

    def record_entries(self, sn: SimNode, entries: list[Entry]) -> None:
        """Log Matching: two logs with an entry of the same index and term agree up to it."""
        prev = sn.chain.get(entries[0].index - 1)
        if prev is None:
            raise InvariantViolation(f"node {sn.id} appended at {entries[0].index} with a gap in its log")
        for stale in range(entries[0].index, sn.chain_base + len(sn.chain)):
            sn.chain.pop(stale, None)
        for e in entries:
            prev = hash((prev, e.term, e.data, e.type))
            sn.chain[e.index] = prev
            known = self.seen.setdefault((e.index, e.term), prev)
            if known != prev:
                raise InvariantViolation(
                    f"Log Matching: node {sn.id} holds a different log up to index {e.index} term {e.term}"
                )

    def record_commit(self, sn: SimNode, commit: int) -> None:
        """No two nodes ever consider different entries committed at one index."""
        for i in range(max(sn.committed, sn.chain_base) + 1, commit + 1):
            h = sn.chain[i]
            if i <= len(self.committed_chain):
                if self.committed_chain[i - 1] != h:
                    raise InvariantViolation(f"node {sn.id} committed a different entry at index {i}")
            elif i == len(self.committed_chain) + 1:
                self.committed_chain.append(h)
                self.committed_terms.append(self.term_of(sn, i))
            else:
                raise InvariantViolation(f"node {sn.id} committed index {i} with a gap in the committed log")
        sn.committed = max(sn.committed, commit)

    def term_of(self, sn: SimNode, index: int) -> int:
        assert sn.node is not None
        return sn.node.log.term(index)

    def check_leader(self, sn: SimNode) -> None:
        """Election Safety, and Leader Completeness for entries committed in earlier terms."""
        assert sn.node is not None
        term = sn.node.term
        holder = self.leaders.setdefault(term, sn.id)
        if holder != sn.id:
            raise InvariantViolation(f"Election Safety: nodes {holder} and {sn.id} both lead term {term}")
        n = bisect.bisect_right(self.committed_terms, term)
        if n == 0:
            return
        index = max(n, sn.chain_base)
        if sn.chain.get(index) != self.committed_chain[index - 1]:
            raise InvariantViolation(
                f"Leader Completeness: leader {sn.id} of term {term} lacks committed entry {n}"
            )

    def record_apply(self, sn: SimNode, entry: Entry) -> None:
        """State Machine Safety: every node applies the same entry, reaching the same state, at an index."""
        if entry.index != sn.applied + 1:
            raise InvariantViolation(f"node {sn.id} applied index {entry.index} after {sn.applied}")
        known = self.applied.setdefault(entry.index, (entry.term, entry.data))
        if known != (entry.term, entry.data):
            raise InvariantViolation(f"State Machine Safety: node {sn.id} applied a different entry at {entry.index}")
        self.record_state(sn, entry.index)

    def record_state(self, sn: SimNode, index: int) -> None:
        digest = hash(tuple(sorted(sn.kv.items())))
        if self.state_hashes.setdefault(index, digest) != digest:
            raise InvariantViolation(f"State Machine Safety: node {sn.id} has a different state at index {index}")
