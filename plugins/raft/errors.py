"""Errors raised by the Raft state machine and its log storage."""

from __future__ import annotations

from shoal.errors import InvalidArgument, ShoalError, Unavailable


class RaftError(ShoalError):
    """Base of every error the Raft plugin raises on purpose."""


class NotLeader(RaftError):
    """The request needs the leader and this node is not it; ``leader`` is the one it knows of (or 0)."""

    def __init__(self, node_id: int, leader: int) -> None:
        hint = f"the leader is node {leader}" if leader else "no leader is known (an election may be running)"
        super().__init__(f"node {node_id} is not the Raft leader: {hint}")
        self.leader = leader


class ProposalDropped(RaftError):
    """The leader refused a proposal for now (a leadership transfer or a membership change is under way)."""


class ProposalTooLarge(RaftError, InvalidArgument):
    """A proposal exceeds the configured maximum entry size; it will never be accepted."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"proposal of {size} bytes exceeds the maximum Raft entry size of {limit} bytes; "
            "split the value or raise max_entry_bytes"
        )
        self.size = size
        self.limit = limit


class ConfChangeRefused(RaftError):
    """A membership change was refused: it is invalid, or unsafe right now (the message says why)."""


class LogCompacted(RaftError):
    """The requested log index lies in the part of the log replaced by a snapshot."""


class EntryUnavailable(RaftError):
    """The requested log index is past the end of the log."""


class SnapshotOutOfDate(RaftError):
    """A snapshot older than the one already held was offered."""


class NoQuorum(RaftError, Unavailable):
    """A request could not be committed or confirmed in time: no quorum of voters is reachable."""
