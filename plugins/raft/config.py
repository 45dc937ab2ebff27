"""Tuning of one Raft node; validated once so the state machine can rely on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shoal.errors import InvalidArgument

from .messages import ENTRY_OVERHEAD, MESSAGE_OVERHEAD


@dataclass(frozen=True)
class RaftConfig:
    """Timing in ticks, batching limits in entries and bytes, and the optional protocol features."""

    #: This node's id (non-zero, unique in the cluster).
    id: int
    #: Ticks without hearing from a leader before a follower starts an election; the actual
    #: timeout is drawn at random from [election_tick, 2 * election_tick) so candidates rarely tie.
    election_tick: int = 10
    #: Ticks between a leader's heartbeats; must be well under election_tick.
    heartbeat_tick: int = 1
    #: Run a PreVote round first, so a node rejoining from a partition does not disrupt the leader.
    pre_vote: bool = True
    #: A leader that has not heard from a quorum within an election timeout steps down; followers
    #: that hear from a leader ignore vote requests for that long.
    check_quorum: bool = True
    #: "safe": each ReadIndex is confirmed with a heartbeat round. "lease": the leader answers at
    #: once, relying on check_quorum and on clocks not drifting more than the election timeout.
    read_mode: Literal["safe", "lease"] = "safe"
    #: Upper bound on the entries and bytes (payload plus overhead) of one append message.
    max_entries_per_msg: int = 256
    max_bytes_per_msg: int = 4 << 20
    #: Append messages in flight to one follower before waiting for acknowledgments.
    max_inflight_msgs: int = 256
    #: Largest proposal accepted; larger ones fail with ProposalTooLarge.
    max_entry_bytes: int = 1 << 20
    #: How many entries behind the leader's last index a learner may be and still be promoted.
    max_promotion_lag: int = 64
    #: Index the application has already applied (its state survived a restart).
    applied: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.id <= 0:
            problems.append("id must be positive")
        if self.heartbeat_tick <= 0:
            problems.append("heartbeat_tick must be positive")
        if self.election_tick <= self.heartbeat_tick:
            problems.append("election_tick must be greater than heartbeat_tick")
        if self.max_entries_per_msg <= 0 or self.max_inflight_msgs <= 0:
            problems.append("max_entries_per_msg and max_inflight_msgs must be positive")
        if self.max_entry_bytes + ENTRY_OVERHEAD + MESSAGE_OVERHEAD > self.max_bytes_per_msg:
            problems.append(
                f"max_entry_bytes ({self.max_entry_bytes}) plus overheads must fit in max_bytes_per_msg "
                f"({self.max_bytes_per_msg}) so every entry fits in one message"
            )
        if self.read_mode == "lease" and not self.check_quorum:
            problems.append('read_mode "lease" needs check_quorum: a leader must step down before its lease ends')
        if self.read_mode not in ("safe", "lease"):
            problems.append(f'read_mode must be "safe" or "lease", not {self.read_mode!r}')
        if problems:
            raise InvalidArgument("invalid Raft config: " + "; ".join(problems))

    @property
    def entry_bytes_per_msg(self) -> int:
        """The byte budget left for entries once a message's own overhead is counted."""
        return self.max_bytes_per_msg - MESSAGE_OVERHEAD
