"""The Raft state machine of one node.

``RaftNode`` does no I/O and reads no clock: the driver calls ``tick()`` at a fixed interval,
passes received messages to ``step()``, and submits requests (``propose``, ``read_index``,
``transfer_leadership``, ``propose_conf_change``). Whatever the node wants done comes back from
``ready()``; the driver persists it, sends its messages, applies its committed entries and then
calls ``advance()``. Section numbers in comments refer to the Raft paper (extended version) and
to Ongaro's thesis for PreVote and leadership transfer.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .config import RaftConfig
from .errors import ConfChangeRefused, LogCompacted, NotLeader, ProposalDropped, ProposalTooLarge, RaftError
from .log import RaftLog
from .messages import (
    CAMPAIGN_TRANSFER,
    COMMIT_ONLY,
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    LOCAL_MESSAGES,
    HardState,
    Message,
    MessageType,
    Ready,
    ReadState,
    Role,
    Snapshot,
    SoftState,
)
from .progress import Progress, ProgressState
from .readonly import ReadOnly
from .storage import Storage

MT = MessageType
_VOTE_MESSAGES = (MT.VOTE, MT.PRE_VOTE)
_LEADER_MESSAGES = (MT.APP, MT.HEARTBEAT, MT.SNAP)


class _Campaign(enum.Enum):
    PRE_ELECTION = "pre-election"
    ELECTION = "election"
    TRANSFER = "transfer"


class _VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True)
class Status:
    """A snapshot of a node's state for status displays and tests."""

    id: int
    term: int
    vote: int
    lead: int
    role: Role
    commit: int
    applied: int
    last_index: int
    voters: tuple[int, ...]
    learners: tuple[int, ...]
    #: Per peer (leaders only): (match, next, progress state).
    progress: dict[int, tuple[int, int, str]]


class RaftNode:
    """One Raft peer; restarts from whatever ``storage`` holds (hard state, snapshot, entries)."""

    def __init__(self, config: RaftConfig, storage: Storage, rng: random.Random) -> None:
        self.id = config.id
        self.config = config
        self.rng = rng
        self.log = RaftLog(storage)
        hard_state, conf_state = storage.initial_state()

        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        # ReadIndex requests held until this leader commits an entry of its own term.
        self._reads_awaiting_commit: list[Message] = []
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        # The commit index advanced: followers hear of it when the next Ready is taken, in an
        # append that carries entries if one goes out by then, else in a COMMIT_ONLY one.
        self._commit_news = False
        # Logical clock (ticks since start) and, per voter, the latest clock value of ours that
        # it echoed in a heartbeat reply: the basis of the leader lease.
        self._clock = 0
        self._lease_acks: dict[int, int] = {}

        self._apply_conf_state(conf_state)
        if hard_state != HardState():
            # A commit index below the snapshot is stale (the snapshot proves more is committed);
            # one past the log means entries acknowledged as stored are missing.
            if hard_state.commit > self.log.last_index():
                raise RaftError(
                    f"stored commit index {hard_state.commit} is past the last stored entry "
                    f"{self.log.last_index()}: the log lost entries it had acknowledged"
                )
            self.term, self.vote = hard_state.term, hard_state.vote
            self.log.commit_to(hard_state.commit)
        if config.applied:
            self.log.applied_to(min(config.applied, self.log.committed))
        self._become_follower(self.term, NONE)
        # After a restart a node cannot tell whether it recently heard from a leader, so it
        # refuses votes for an election timeout as if it had: a leader's lease survives our
        # crash. A node that never saw a term cannot be part of anyone's lease.
        self._startup_hold = config.election_tick if config.check_quorum and self.term > 0 else 0

        self._prev_soft = self.soft_state()
        self._prev_hard = self.hard_state()
        self._ready_outstanding = False

    # ----------------------------------------------------------------------------------------
    # Driver interface

    def tick(self) -> None:
        """Advance logical time by one tick (elections, heartbeats, quorum checks)."""
        self._clock += 1
        if self._startup_hold:
            self._startup_hold -= 1
        if self.role is Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def step(self, m: Message) -> None:
        """Process a message received from a peer."""
        if m.type in LOCAL_MESSAGES:
            raise RaftError(f"{m.type.value} is a local message and cannot arrive from a peer")
        if m.type in _LEADER_MESSAGES or m.type in _VOTE_MESSAGES:
            if m.frm == self.id:
                raise RaftError(f"node {self.id} received a {m.type.value} message from itself")
        self._step(m)

    def campaign(self) -> None:
        """Start an election now instead of waiting for the election timeout."""
        self._step(self._local(MT.HUP))

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append ``data`` to the log; returns its (term, index).

        The entry is committed once an applied entry has that index and term; if an entry of
        another term is applied at that index instead, the proposal was lost with a leader change.
        """
        return self._propose(data, EntryType.NORMAL)

    def propose_batch(self, payloads: Sequence[bytes]) -> list[tuple[int, int]]:
        """Append several entries at once, replicated in as few messages as the limits allow.

        All or nothing: if any payload is too large, none is appended.
        """
        return self._propose_entries(payloads, EntryType.NORMAL)

    def propose_conf_change(self, change: ConfChange) -> tuple[int, int]:
        """Propose a single-node membership change; applied by ``apply_conf_change`` once committed.

        One change may be pending at a time. A new node joins as a learner and is promoted with
        ADD_VOTER once it has caught up, so it cannot stall commits while it copies the log.
        """
        if self.role is not Role.LEADER:
            raise NotLeader(self.id, self.lead)
        self._check_conf_change(change)
        term, index = self._propose(change.encode(), EntryType.CONF_CHANGE)
        self.pending_conf_index = index
        return term, index

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        """Apply a committed membership change (the driver calls this when applying its entry)."""
        node_id = change.node_id
        if change.type is ConfChangeType.ADD_VOTER:
            self.learners.discard(node_id)
            self.voters.add(node_id)
            if node_id in self.progress:
                self.progress[node_id].learner = False
            else:
                self._add_progress(node_id, learner=False)
        elif change.type is ConfChangeType.ADD_LEARNER:
            if node_id not in self.voters and node_id not in self.learners:
                self.learners.add(node_id)
                self._add_progress(node_id, learner=True)
        else:
            self.voters.discard(node_id)
            self.learners.discard(node_id)
            self.progress.pop(node_id, None)
        if self.role is Role.LEADER:
            if self.lead_transferee == node_id and change.type is ConfChangeType.REMOVE_NODE:
                self.lead_transferee = NONE
            if self.id not in self.voters:
                self._become_follower(self.term, NONE)  # removed ourselves: let the others elect
            elif self._maybe_commit():
                self._broadcast_append()  # the quorum shrank: more may be committed now
        return self.conf_state()

    def read_index(self, context: bytes) -> None:
        """Request a linearizable read; a ``ReadState`` with ``context`` (unique per request) comes
        back in a later Ready. Serve the read once the applied index reaches its index (§8).

        A follower forwards the request to its leader. A request can be lost (a leader change,
        a dropped message): the caller retries after a timeout with a new context.
        """
        self._step(Message(MT.READ_INDEX, frm=self.id, context=context))

    def transfer_leadership(self, to: int) -> None:
        """Hand leadership to voter ``to`` once its log is up to date (thesis §3.10)."""
        if to not in self.voters:
            raise ConfChangeRefused(f"cannot transfer leadership to {to}: it is not a voter")
        if self.role is not Role.LEADER and self.lead == NONE:
            raise NotLeader(self.id, NONE)
        self._step(Message(MT.TRANSFER_LEADER, frm=to, term=self.term))

    def report_unreachable(self, node_id: int) -> None:
        """The transport failed to deliver to ``node_id``: stop streaming to it and probe instead."""
        self._step(Message(MT.UNREACHABLE, frm=node_id))

    def report_snapshot(self, node_id: int, ok: bool) -> None:
        """The transport finished (or gave up) sending the snapshot to ``node_id``."""
        self._step(Message(MT.SNAP_STATUS, frm=node_id, reject=not ok))

    def acknowledges_nothing_new(self, m: Message) -> bool:
        """Whether stepping ``m`` would only note that its sender is alive: an append
        acknowledgment of this leader's term for entries already known to be replicated there
        (followers answer the appends that only carry the commit index so). A driver may let
        such a message wait until something else wakes it; check_quorum's count of live peers
        spans an election timeout, and heartbeats answer every heartbeat interval anyway.
        """
        if m.type is not MT.APP_RESP or m.reject or m.term != self.term or self.role is not Role.LEADER:
            return False
        pr = self.progress.get(m.frm)
        return pr is not None and m.index <= pr.match

    def has_ready(self) -> bool:
        if self._ready_outstanding:
            return False
        return bool(
            self.msgs
            or self._commit_news
            or self.read_states
            or self.log.unstable.entries
            or self.log.unstable.snapshot is not None
            or self.log.has_next_committed()
            or self.soft_state() != self._prev_soft
            or self.hard_state() != self._prev_hard
        )

    def ready(self) -> Ready:
        """The next batch of work; call ``advance`` with it before asking for another."""
        if self._ready_outstanding:
            raise RaftError("advance() must be called with the previous Ready before the next ready()")
        if self._commit_news:
            self._tell_commit()
        rd = Ready(
            entries=list(self.log.unstable.entries),
            snapshot=self.log.unstable.snapshot,
            committed_entries=self.log.next_committed(),
            messages=self.msgs,
            read_states=self.read_states,
        )
        self.msgs, self.read_states = [], []
        soft, hard = self.soft_state(), self.hard_state()
        if soft != self._prev_soft:
            rd.soft_state = self._prev_soft = soft
        if hard != self._prev_hard:
            rd.must_sync = hard.term != self._prev_hard.term or hard.vote != self._prev_hard.vote
            rd.hard_state = self._prev_hard = hard
        rd.must_sync = rd.must_sync or bool(rd.entries) or rd.snapshot is not None
        self._ready_outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver has persisted, sent and applied everything in ``rd``."""
        if rd.snapshot is not None:
            self.log.unstable.stable_snapshot_to(rd.snapshot.index)
            self.log.applied_to(rd.snapshot.index)
        if rd.entries:
            last = rd.entries[-1]
            self.log.unstable.stable_to(last.index, last.term)
        if rd.committed_entries:
            self.log.applied_to(rd.committed_entries[-1].index)
        self._ready_outstanding = False

    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def conf_state(self) -> ConfState:
        return ConfState(tuple(sorted(self.voters)), tuple(sorted(self.learners)))

    def status(self) -> Status:
        progress = {}
        if self.role is Role.LEADER:
            progress = {i: (pr.match, pr.next, pr.state.value) for i, pr in self.progress.items()}
        return Status(
            id=self.id,
            term=self.term,
            vote=self.vote,
            lead=self.lead,
            role=self.role,
            commit=self.log.committed,
            applied=self.log.applied,
            last_index=self.log.last_index(),
            voters=tuple(sorted(self.voters)),
            learners=tuple(sorted(self.learners)),
            progress=progress,
        )

    # ----------------------------------------------------------------------------------------
    # Helpers

    def _local(self, kind: MessageType) -> Message:
        return Message(kind, frm=self.id)

    def _send(self, kind: MessageType, to: int, *, term: int | None = None, **fields: object) -> None:
        self.msgs.append(Message(kind, to=to, frm=self.id, term=self.term if term is None else term, **fields))  # type: ignore[arg-type]

    def _quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def _promotable(self) -> bool:
        return self.id in self.voters

    def _add_progress(self, node_id: int, *, learner: bool) -> None:
        pr = Progress(self.log.last_index() + 1, self.config.max_inflight_msgs, learner=learner)
        pr.recent_active = True  # give a new member an election timeout before it counts as absent
        self.progress[node_id] = pr

    def _apply_conf_state(self, cs: ConfState) -> None:
        self.voters, self.learners = set(cs.voters), set(cs.learners)
        self.progress = {}
        for node_id in (*cs.voters, *cs.learners):
            self._add_progress(node_id, learner=node_id in self.learners)

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        tick = self.config.election_tick
        self.randomized_election_timeout = tick + self.rng.randrange(tick)
        self.lead_transferee = NONE
        self.votes = {}
        last = self.log.last_index()
        for node_id, pr in self.progress.items():
            fresh = Progress(last + 1, self.config.max_inflight_msgs, learner=pr.learner)
            if node_id == self.id:
                fresh.match = last
            self.progress[node_id] = fresh
        self.pending_conf_index = 0
        self.read_only.reset()
        self._reads_awaiting_commit = []
        self._lease_acks = {}

    def _become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        # A pre-candidate changes neither term nor vote: losing the pre-vote disturbs nobody.
        if self.role is Role.LEADER:
            raise AssertionError("a leader cannot become a pre-candidate")
        self.votes = {}
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        if self.role is Role.LEADER:
            raise AssertionError("a leader cannot become a candidate")
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        if self.role is Role.FOLLOWER:
            raise AssertionError("a follower cannot become leader without an election")
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self.progress[self.id].become_replicate()
        # Conf changes wait until everything from earlier terms is applied: the no-op below
        # commits them, which also closes the single-server change hazard (thesis §4.1).
        self.pending_conf_index = self.log.last_index()
        self._append_entries([Entry(self.term, self.log.last_index() + 1)])

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self._promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self._step(self._local(MT.HUP))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.config.election_tick:
            self.election_elapsed = 0
            if self.config.check_quorum:
                self._step(self._local(MT.CHECK_QUORUM))
            if self.role is Role.LEADER:
                self.lead_transferee = NONE  # a transfer that took an election timeout has failed
        if self.role is not Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.config.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._step(self._local(MT.BEAT))

    # ----------------------------------------------------------------------------------------
    # Proposals

    def _propose(self, data: bytes, kind: EntryType) -> tuple[int, int]:
        return self._propose_entries([data], kind)[0]

    def _propose_entries(self, payloads: Sequence[bytes], kind: EntryType) -> list[tuple[int, int]]:
        if self.role is not Role.LEADER:
            raise NotLeader(self.id, self.lead)
        for data in payloads:
            if len(data) > self.config.max_entry_bytes:
                raise ProposalTooLarge(len(data), self.config.max_entry_bytes)
        if self.id not in self.progress:
            raise ProposalDropped(f"node {self.id} was removed from the cluster and no longer accepts proposals")
        if self.lead_transferee != NONE:
            raise ProposalDropped(f"leadership is being transferred to node {self.lead_transferee}; retry shortly")
        first = self.log.last_index() + 1
        entries = [Entry(self.term, first + i, data, kind) for i, data in enumerate(payloads)]
        if not entries:
            return []
        self._append_entries(entries)
        self._broadcast_append()
        return [(e.term, e.index) for e in entries]

    def _check_conf_change(self, change: ConfChange) -> None:
        node_id = change.node_id
        if node_id <= 0:
            raise ConfChangeRefused(f"invalid node id {node_id}")
        if self.pending_conf_index > self.log.applied:
            raise ConfChangeRefused(
                f"a membership change (or an entry from an earlier term) up to index {self.pending_conf_index} "
                "is not applied yet; one change at a time"
            )
        if change.type is ConfChangeType.ADD_VOTER:
            if node_id in self.voters:
                raise ConfChangeRefused(f"node {node_id} is already a voter")
            if node_id not in self.learners:
                raise ConfChangeRefused(
                    f"node {node_id} is not a member: add it as a learner first and promote it once it caught up"
                )
            pr = self.progress[node_id]
            lag = self.log.last_index() - pr.match
            if pr.state is not ProgressState.REPLICATE or lag > self.config.max_promotion_lag:
                raise ConfChangeRefused(
                    f"learner {node_id} has not caught up ({lag} entries behind, at most "
                    f"{self.config.max_promotion_lag} allowed for promotion); retry once it has"
                )
        elif change.type is ConfChangeType.ADD_LEARNER:
            if node_id in self.voters or node_id in self.learners:
                raise ConfChangeRefused(f"node {node_id} is already a member")
        else:
            if node_id not in self.voters and node_id not in self.learners:
                raise ConfChangeRefused(f"node {node_id} is not a member")
            if self.voters == {node_id}:
                raise ConfChangeRefused(f"node {node_id} is the last voter and cannot be removed")

    def _append_entries(self, entries: list[Entry]) -> None:
        last = self.log.append(entries)
        self.progress[self.id].maybe_update(last)
        self._maybe_commit()

    # ----------------------------------------------------------------------------------------
    # Message dispatch

    def _step(self, m: Message) -> None:
        kind = m.type
        if m.term == 0:
            pass  # local input or a forwarded request
        elif m.term > self.term:
            if kind in _VOTE_MESSAGES:
                forced = m.context == CAMPAIGN_TRANSFER
                in_lease = self._startup_hold > 0 or (
                    self.config.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.config.election_tick
                )
                if in_lease and not forced:
                    # §6 / thesis §4.2.3: a node that hears from a current leader ignores
                    # candidates, so a removed or partitioned node cannot depose it.
                    return
            if kind is MT.PRE_VOTE or (kind is MT.PRE_VOTE_RESP and not m.reject):
                pass  # a pre-vote never changes the term
            else:
                self._become_follower(m.term, m.frm if kind in _LEADER_MESSAGES else NONE)
        elif m.term < self.term:
            if kind in (MT.HEARTBEAT, MT.APP) and (self.config.check_quorum or self.config.pre_vote):
                # A stale leader learns the new term from the answer and steps down; without
                # this, a node whose pre-votes fail would never tell it.
                self._send(MT.APP_RESP, m.frm)
            elif kind is MT.PRE_VOTE:
                self._send(MT.PRE_VOTE_RESP, m.frm, reject=True)
            return

        if kind is MT.HUP:
            self._hup()
        elif kind in _VOTE_MESSAGES:
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role is Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _hup(self, transfer: bool = False) -> None:
        if self.role is Role.LEADER or not self._promotable():
            return
        if self._has_unapplied_conf_change():
            return  # campaign only once the membership in effect is the one committed
        if transfer:
            self._campaign(_Campaign.TRANSFER)
        elif self.config.pre_vote:
            self._campaign(_Campaign.PRE_ELECTION)
        else:
            self._campaign(_Campaign.ELECTION)

    def _has_unapplied_conf_change(self) -> bool:
        try:
            pending = self.log.next_committed()
        except LogCompacted:
            return False
        return any(e.type is EntryType.CONF_CHANGE for e in pending)

    def _campaign(self, kind: _Campaign) -> None:
        if kind is _Campaign.PRE_ELECTION:
            self._become_pre_candidate()
            vote_type, term = MT.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            vote_type, term = MT.VOTE, self.term
        if self._poll(self.id, True) is _VoteResult.WON:
            if kind is _Campaign.PRE_ELECTION:
                self._campaign(_Campaign.ELECTION)
            else:
                self._become_leader()
            return
        context = CAMPAIGN_TRANSFER if kind is _Campaign.TRANSFER else b""
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for voter in sorted(self.voters):
            if voter != self.id:
                self._send(vote_type, voter, term=term, index=last_index, log_term=last_term, context=context)

    def _poll(self, node_id: int, granted: bool) -> _VoteResult:
        self.votes.setdefault(node_id, granted)
        yes = sum(1 for v, g in self.votes.items() if g and v in self.voters)
        no = sum(1 for v, g in self.votes.items() if not g and v in self.voters)
        if yes >= self._quorum():
            return _VoteResult.WON
        if no > len(self.voters) - self._quorum():
            return _VoteResult.LOST
        return _VoteResult.PENDING

    def _handle_vote_request(self, m: Message) -> None:
        response = MT.VOTE_RESP if m.type is MT.VOTE else MT.PRE_VOTE_RESP
        # §5.2: one vote per term, first come first served; a pre-vote for a later term binds nothing.
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.lead == NONE)
            or (m.type is MT.PRE_VOTE and m.term > self.term)
        )
        # §5.4.1: only for a candidate whose log is at least as up to date as ours.
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(response, m.frm, term=m.term)
            if m.type is MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(response, m.frm, reject=True)

    # ----------------------------------------------------------------------------------------
    # Follower and candidate

    def _step_follower(self, m: Message) -> None:
        kind = m.type
        if kind in _LEADER_MESSAGES:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_leader_message(m)
        elif kind is MT.TRANSFER_LEADER:
            if self.lead != NONE:
                self.msgs.append(replace(m, to=self.lead, term=self.term))
        elif kind is MT.TIMEOUT_NOW:
            self._hup(transfer=True)  # thesis §3.10: start an election at once, skipping the pre-vote
        elif kind is MT.READ_INDEX and m.frm == self.id:
            if self.lead == NONE:
                raise NotLeader(self.id, NONE)
            self._send(MT.READ_INDEX, self.lead, term=0, context=m.context)
        elif kind is MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _step_candidate(self, m: Message) -> None:
        kind = m.type
        own_response = MT.PRE_VOTE_RESP if self.role is Role.PRE_CANDIDATE else MT.VOTE_RESP
        if kind in _LEADER_MESSAGES:
            # §5.2: a candidate that hears from a leader of its term (or later) returns to follower.
            self._become_follower(m.term, m.frm)
            self._handle_leader_message(m)
        elif kind is own_response:
            result = self._poll(m.frm, not m.reject)
            if result is _VoteResult.WON:
                if self.role is Role.PRE_CANDIDATE:
                    self._campaign(_Campaign.ELECTION)
                else:
                    self._become_leader()
                    self._broadcast_append()
            elif result is _VoteResult.LOST:
                self._become_follower(self.term, NONE)
        elif kind is MT.READ_INDEX and m.frm == self.id:
            raise NotLeader(self.id, NONE)

    def _handle_leader_message(self, m: Message) -> None:
        if m.type is MT.APP:
            self._handle_append(m)
        elif m.type is MT.HEARTBEAT:
            self.log.commit_to(m.commit)
            self._send(MT.HEARTBEAT_RESP, m.frm, index=m.index, context=m.context)
        else:
            self._handle_snapshot(m)

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(MT.APP_RESP, m.frm, index=self.log.committed)
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            if m.entries or m.context != COMMIT_ONLY:
                self._send(MT.APP_RESP, m.frm, index=last_new)
            return
        # §5.3 optimisation: tell the leader the last index whose term is <= the probed term,
        # so it can skip a whole conflicting term per round trip.
        hint_index, hint_term = self.log.find_conflict_by_term(min(m.index, self.log.last_index()), m.log_term)
        self._send(MT.APP_RESP, m.frm, index=m.index, reject=True, reject_hint=hint_index, log_term=hint_term)

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        if self._restore(m.snapshot):
            self._send(MT.APP_RESP, m.frm, index=self.log.last_index())
        else:
            self._send(MT.APP_RESP, m.frm, index=self.log.committed)

    def _restore(self, snapshot: Snapshot) -> bool:
        if snapshot.index <= self.log.committed:
            return False
        # The snapshot's membership may predate our joining: the entries after it add us.
        cs = snapshot.metadata.conf_state
        if self.log.match_term(snapshot.index, snapshot.term):
            self.log.commit_to(snapshot.index)  # we already hold the entries: just move the commit
            return False
        self.log.restore(snapshot)
        self._apply_conf_state(cs)
        return True

    # ----------------------------------------------------------------------------------------
    # Leader

    def _step_leader(self, m: Message) -> None:
        kind = m.type
        if kind is MT.BEAT:
            self._broadcast_heartbeat()
            return
        if kind is MT.CHECK_QUORUM:
            if not self._quorum_active():
                self._become_follower(self.term, NONE)
            return
        if kind is MT.READ_INDEX:
            self._leader_read_index(m)
            return
        pr = self.progress.get(m.frm)
        if pr is None:
            return  # not (or no longer) a member
        if kind is MT.APP_RESP:
            self._handle_append_response(m, pr)
        elif kind is MT.HEARTBEAT_RESP:
            self._handle_heartbeat_response(m, pr)
        elif kind is MT.SNAP_STATUS:
            if pr.state is ProgressState.SNAPSHOT:
                if m.reject:
                    pr.pending_snapshot = 0
                pr.become_probe()
                pr.probe_sent = True  # wait for a heartbeat answer before probing again
        elif kind is MT.UNREACHABLE:
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
        elif kind is MT.TRANSFER_LEADER:
            self._handle_transfer(m.frm, pr)

    def _quorum_active(self) -> bool:
        active = 0
        for node_id, pr in self.progress.items():
            if node_id == self.id:
                active += node_id in self.voters
                continue
            if pr.recent_active and node_id in self.voters:
                active += 1
            pr.recent_active = False
        return active >= self._quorum()

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            probe = m.reject_hint
            if m.log_term > 0:
                probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decrease_to(m.index, probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.frm)
            return
        was_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
            pr.become_replicate()
        elif pr.state is ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._commit_news = True
        elif was_paused:
            self._send_append(m.frm)
        # Pipelining: keep sending while the in-flight window has room.
        while self._send_append(m.frm, send_if_empty=False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self._send(MT.TIMEOUT_NOW, m.frm)

    def _handle_heartbeat_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        pr.probe_sent = False
        if m.index > self._lease_acks.get(m.frm, 0):
            self._lease_acks[m.frm] = m.index
        if pr.state is ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first()  # an append may have been lost: let one more through
        if pr.match < self.log.last_index():
            self._send_append(m.frm)
        if not m.context:
            return
        acks = self.read_only.ack(m.context, m.frm)
        if acks is None or len(acks & self.voters) < self._quorum():
            return
        for request in self.read_only.release(m.context):
            self._answer_read(request.requester, request.index, request.context)

    def _handle_transfer(self, transferee: int, pr: Progress) -> None:
        if pr.learner or transferee == self.id:
            return
        if self.lead_transferee == transferee:
            return
        self.lead_transferee = transferee
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        if pr.match == self.log.last_index():
            self._send(MT.TIMEOUT_NOW, transferee)
        else:
            self._send_append(transferee)

    def _leader_read_index(self, m: Message) -> None:
        requester = NONE if m.frm == self.id else m.frm
        if self.voters == {self.id}:
            self._answer_read(requester, self.log.committed, m.context)
        elif self.log.term_or_none(self.log.committed) != self.term:
            # §8: a new leader learns which entries are committed only once it commits one of its own.
            self._reads_awaiting_commit.append(m)
        else:
            self._serve_read(requester, m.context)

    def _lease_valid(self) -> bool:
        """Whether no other leader can exist yet (thesis §6.4.1).

        A voter that answered a heartbeat we sent at clock t reset its election timer after t,
        so it refuses votes until t + election_tick on its clock. Once a quorum has done so, no
        candidate can win before then; one tick of margin absorbs tick phase differences, and
        tick rates are assumed to drift less than that.
        """
        sent = sorted((self._clock if v == self.id else self._lease_acks.get(v, -1) for v in self.voters), reverse=True)
        return self._clock - sent[self._quorum() - 1] < self.config.election_tick - 1

    def _serve_read(self, requester: int, context: bytes) -> None:
        if self.config.read_mode == "lease" and self._lease_valid():
            self._answer_read(requester, self.log.committed, context)
            return
        self.read_only.add(self.log.committed, requester, context)
        self.read_only.ack(context, self.id)
        self._broadcast_heartbeat(context)

    def _answer_read(self, requester: int, index: int, context: bytes) -> None:
        if requester == NONE:
            self.read_states.append(ReadState(index, context))
        else:
            self._send(MT.READ_INDEX_RESP, requester, index=index, context=context)

    def _maybe_commit(self) -> bool:
        if not self.voters:
            return False
        matches = sorted((self.progress[v].match for v in self.voters if v in self.progress), reverse=True)
        if len(matches) < self._quorum():
            return False
        if not self.log.maybe_commit(matches[self._quorum() - 1], self.term):
            return False
        if self._reads_awaiting_commit:
            waiting, self._reads_awaiting_commit = self._reads_awaiting_commit, []
            for m in waiting:
                self._serve_read(NONE if m.frm == self.id else m.frm, m.context)
        return True

    def _broadcast_append(self) -> None:
        """Send every follower its next entries (an empty append to one that is up to date)."""
        for node_id in self.progress:
            if node_id != self.id:
                self._send_append(node_id)

    def _tell_commit(self) -> None:
        """Send the commit index to every follower that no append queued since it advanced carries."""
        self._commit_news = False
        if self.role is not Role.LEADER:
            return
        told = {m.to for m in self.msgs if m.type is MT.APP and m.commit >= self.log.committed}
        for node_id in self.progress:
            if node_id != self.id and node_id not in told:
                self._send_append(node_id, commit_only=True)

    def _broadcast_heartbeat(self, context: bytes | None = None) -> None:
        if context is None:
            context = self.read_only.last_context()
        for node_id, pr in self.progress.items():
            if node_id != self.id:
                # Never ahead of what the follower is known to hold: it may lack later entries.
                # index carries our clock, echoed back for the lease.
                self._send(
                    MT.HEARTBEAT, node_id, index=self._clock, commit=min(pr.match, self.log.committed), context=context
                )

    def _send_append(self, to: int, send_if_empty: bool = True, commit_only: bool = False) -> bool:
        pr = self.progress[to]
        if pr.is_paused():
            return False
        prev = pr.next - 1
        try:
            prev_term = self.log.term(prev)
            hi = min(self.log.last_index() + 1, pr.next + self.config.max_entries_per_msg)
            entries = self.log.slice(pr.next, hi, self.config.entry_bytes_per_msg) if pr.next < hi else []
        except LogCompacted:
            return self._send_snapshot(to, pr)
        if not entries and not send_if_empty:
            return False
        unanswered = commit_only and not entries and pr.state is ProgressState.REPLICATE
        self._send(MT.APP, to, index=prev, log_term=prev_term, entries=tuple(entries), commit=self.log.committed,
                   context=COMMIT_ONLY if unanswered else b"")  # fmt: skip
        if entries:
            if pr.state is ProgressState.REPLICATE:
                last = entries[-1].index
                pr.optimistic_update(last)
                pr.inflights.add(last)
            else:
                pr.probe_sent = True
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False  # no point shipping a snapshot to a peer that does not answer
        snapshot = self.log.storage.snapshot()
        if snapshot.is_empty():
            raise RaftError("the log was compacted but storage holds no snapshot")
        self._send(MT.SNAP, to, snapshot=snapshot)
        pr.become_snapshot(snapshot.index)
        return True
