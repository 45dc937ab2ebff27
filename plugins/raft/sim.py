"""A seeded, single-threaded simulation of a Raft cluster over an unreliable network.

``Cluster`` drives ``RaftNode``s the way a real driver does (persist, send, apply, advance) over
a ``Network`` that loses, duplicates, delays and reorders messages and can be partitioned, even
one way. Nodes crash and restart; a crash may tear the write of a Ready so that only part of it
reaches storage. ``invariants.SafetyChecker`` verifies Raft's safety properties after every
step, and the key-value clients' calls are recorded as a history for the linearizability checker.
``scenario`` builds randomized runs on top.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from dataclasses import dataclass, field

from .config import RaftConfig
from .errors import ConfChangeRefused, NotLeader, ProposalDropped
from .invariants import InvariantViolation, SafetyChecker
from .linearizability import Operation
from .messages import ConfChange, ConfChangeType, ConfState, Entry, EntryType, Message, MessageType, Ready, Role
from .node import RaftNode
from .storage import MemoryStorage


@dataclass
class Faults:
    """How unreliable the network is; probabilities are per message."""

    loss: float = 0.0
    duplicate: float = 0.0
    min_delay: int = 1
    max_delay: int = 1


class Network:
    """Messages in flight, delivered after a random delay unless the link is cut."""

    def __init__(self, rng: random.Random, faults: Faults | None = None) -> None:
        self.rng = rng
        self.faults = faults or Faults()
        #: Directed links (from, to) that drop everything.
        self.blocked: set[tuple[int, int]] = set()
        self._queue: list[tuple[int, int, Message]] = []
        self._seq = 0

    def _link_up(self, m: Message) -> bool:
        return (m.frm, m.to) not in self.blocked

    def send(self, m: Message, now: int) -> bool:
        """Queue ``m``; False if it was dropped at once (lost or the link is cut)."""
        faults = self.faults
        if not self._link_up(m) or self.rng.random() < faults.loss:
            return False
        copies = 2 if self.rng.random() < faults.duplicate else 1
        for _ in range(copies):
            self._seq += 1
            delay = self.rng.randint(faults.min_delay, faults.max_delay)
            heapq.heappush(self._queue, (now + delay, self._seq, m))
        return True

    def due(self, now: int) -> list[Message]:
        """Messages arriving by ``now``, shuffled (so equal delays still reorder)."""
        out = []
        while self._queue and self._queue[0][0] <= now:
            m = heapq.heappop(self._queue)[2]
            if self._link_up(m):
                out.append(m)
        self.rng.shuffle(out)
        return out

    def partition(self, *groups: set[int]) -> None:
        """Cut every link between different groups, both ways."""
        self.blocked = {(a, b) for g in groups for h in groups if g is not h for a in g for b in h}

    def heal(self) -> None:
        self.blocked = set()


def encode_put(key: str, value: str) -> bytes:
    return json.dumps([key, value]).encode()


@dataclass
class SimNode:
    """One cluster member: durable storage, and the parts lost on a crash (node, state machine)."""

    id: int
    storage: MemoryStorage
    node: RaftNode | None = None
    kv: dict[str, str] = field(default_factory=dict)
    applied: int = 0
    #: Chain hash of the persisted log per index (from the snapshot's index on): equal hashes at
    #: an index mean equal logs up to it.
    chain: dict[int, int] = field(default_factory=dict)
    chain_base: int = 0
    #: The commit index already reported to the checker.
    committed: int = 0
    #: Crash while persisting the next Ready, keeping only part of it.
    tear_next_ready: bool = False
    #: Removed from the cluster and stopped for good (its id is never reused).
    removed: bool = False

    @property
    def alive(self) -> bool:
        return self.node is not None


@dataclass
class PendingOp:
    """A client's view of an operation it started: ``done`` once answered or known to have failed."""

    op: Operation
    node_id: int
    term: int = 0
    index: int = 0
    done: bool = False


class Cluster:
    """Nodes 1..size driven tick by tick; every random choice comes from one seeded generator."""

    def __init__(self, size: int, seed: int, *, config: dict[str, object] | None = None,
                 faults: Faults | None = None, snapshot_every: int = 0) -> None:
        self.rng = random.Random(seed)
        self.size = size
        self.now = 0
        self.network = Network(self.rng, faults)
        self.checker = SafetyChecker()
        self.config_overrides = dict(config or {})
        self.snapshot_every = snapshot_every
        self._bootstrap = ConfState(voters=tuple(range(1, size + 1)))
        self.nodes = {i: SimNode(i, MemoryStorage(self._bootstrap)) for i in range(1, size + 1)}
        #: A voter being replaced by a new node: (old id, new id).
        self.replacing: tuple[int, int] | None = None
        self._next_id = size + 1
        for sn in self.nodes.values():
            self._start(sn)
        self.history: list[Operation] = []
        self._puts: list[PendingOp] = []
        #: When each index was first applied anywhere: its entry was committed by then.
        self._first_applied: dict[int, int] = {}
        self._awaiting_apply: dict[tuple[int, int], list[PendingOp]] = {}
        self._pending_reads: dict[tuple[int, bytes], PendingOp] = {}
        self._waiting_reads: list[tuple[int, int, PendingOp]] = []
        self._next_op = 0
        self.trace: list[str] | None = None

    # -- node lifecycle ---------------------------------------------------------------------

    def _start(self, sn: SimNode) -> None:
        # The state machine restarts from the snapshot: Raft resumes applying right after it.
        snap = sn.storage.snapshot()
        config = RaftConfig(id=sn.id, applied=snap.index, **self.config_overrides)  # type: ignore[arg-type]
        sn.node = RaftNode(config, sn.storage, random.Random(self.rng.getrandbits(64)))
        sn.kv = dict(json.loads(snap.data)) if snap.data else {}
        sn.applied = snap.index
        base = sn.storage.first_index() - 1
        sn.chain_base = sn.committed = base
        sn.chain = {base: self.checker.committed_chain[base - 1] if base else 0}
        entries = sn.storage.entries(sn.storage.first_index(), sn.storage.last_index() + 1)
        if entries:
            self.checker.record_entries(sn, entries)

    def crash(self, node_id: int, *, torn: bool = False) -> None:
        """Stop a node now (``torn``: at its next Ready, after persisting only part of it)."""
        sn = self.nodes[node_id]
        if torn:
            sn.tear_next_ready = True
            return
        self._lose_node(sn)

    def _lose_node(self, sn: SimNode) -> None:
        self.log_event(f"crash {sn.id}")
        sn.node = None
        sn.tear_next_ready = False
        for key in [k for k in self._pending_reads if k[0] == sn.id]:
            del self._pending_reads[key]  # a read without an answer has no effect: forget it
        self._waiting_reads = [w for w in self._waiting_reads if w[0] != sn.id]
        for key in [k for k in self._awaiting_apply if k[0] == sn.id]:
            del self._awaiting_apply[key]  # the client times out; the committed log decides later

    def restart(self, node_id: int) -> None:
        sn = self.nodes[node_id]
        if not sn.alive and not sn.removed:
            self.log_event(f"restart {node_id}")
            self._start(sn)

    def replace_step(self) -> None:
        """Drive the replacement of a voter one step: remove it, add a new learner, promote it.

        Each step proposes the next single-node change through the current leader; refused or
        lost proposals are simply tried again on a later step.
        """
        lead = self.leader()
        if lead is None or lead.node is None:
            return
        node = lead.node
        if self.replacing is None:
            others = sorted(v for v in node.voters if v != lead.id)
            if len(node.voters) < self.size or not others:
                return
            self.replacing = (self.rng.choice(others), self._next_id)
            self._next_id += 1
            self.log_event(f"replace {self.replacing[0]} by {self.replacing[1]}")
        old, new = self.replacing
        members = node.voters | node.learners
        if old not in members and not self.nodes[old].removed:
            self.nodes[old].removed = True
            self._lose_node(self.nodes[old])
        try:
            if old in members:
                node.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, old))
            elif new not in members:
                if new not in self.nodes:
                    # A joining node knows the initial membership; the log tells it the rest.
                    self.nodes[new] = SimNode(new, MemoryStorage(self._bootstrap))
                    self._start(self.nodes[new])
                node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, new))
            elif new in node.learners:
                node.propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, new))
            else:
                self.replacing = None
        except (ConfChangeRefused, ProposalDropped):
            pass

    # -- time -------------------------------------------------------------------------------

    def tick(self) -> None:
        """One unit of time: deliver what is due, tick every live node, process every Ready."""
        self.now += 1
        for m in self.network.due(self.now):
            sn = self.nodes.get(m.to)
            if sn is not None and sn.node is not None:
                sn.node.step(m)
        for sn in self.nodes.values():
            if sn.node is not None:
                sn.node.tick()
        self.process()

    def process(self) -> None:
        for sn in self.nodes.values():
            while sn.node is not None and sn.node.has_ready():
                self._handle_ready(sn, sn.node.ready())
        self._check_leaders()

    def _handle_ready(self, sn: SimNode, rd: Ready) -> None:
        node = sn.node
        assert node is not None
        checker = self.checker
        # 1. Persist: snapshot, entries, hard state, in that order (a torn write keeps a prefix).
        if sn.tear_next_ready:
            kept = self.rng.randint(0, len(rd.entries))
            if rd.snapshot is None and kept:
                sn.storage.append(rd.entries[:kept])
                checker.record_entries(sn, rd.entries[:kept])
            self._lose_node(sn)
            return
        if rd.snapshot is not None:
            snap = rd.snapshot
            sn.storage.apply_snapshot(snap)
            sn.chain = {snap.index: checker.committed_chain[snap.index - 1]}
            sn.chain_base = sn.committed = snap.index
        if rd.entries:
            sn.storage.append(rd.entries)
            checker.record_entries(sn, rd.entries)
        if rd.hard_state is not None:
            sn.storage.set_hard_state(rd.hard_state)
            checker.record_commit(sn, rd.hard_state.commit)
        # 2. Send.
        limit = node.config.max_bytes_per_msg
        for m in rd.messages:
            if m.type is not MessageType.SNAP and m.size() > limit:
                raise InvariantViolation(f"message of {m.size()} bytes exceeds the {limit}-byte budget")
            delivered = self.network.send(m, self.now)
            if m.type is MessageType.SNAP:
                node.report_snapshot(m.to, delivered)
        # 3. Apply.
        if rd.snapshot is not None:
            sn.kv = dict(json.loads(rd.snapshot.data))
            sn.applied = rd.snapshot.index
            checker.record_state(sn, sn.applied)
        for e in rd.committed_entries:
            self._apply(sn, e)
        for rs in rd.read_states:
            pending = self._pending_reads.pop((sn.id, rs.context), None)
            if pending is not None:
                self._waiting_reads.append((sn.id, rs.index, pending))
        node.advance(rd)
        self._serve_reads(sn)
        if self.snapshot_every and sn.applied - sn.storage.first_index() >= self.snapshot_every:
            self._compact(sn)

    def _apply(self, sn: SimNode, e: Entry) -> None:
        assert sn.node is not None
        if e.type is EntryType.CONF_CHANGE:
            sn.node.apply_conf_change(ConfChange.decode(e.data))
        elif e.data:
            key, value = json.loads(e.data)
            sn.kv[key] = value
        self.checker.record_apply(sn, e)
        sn.applied = e.index
        self._first_applied.setdefault(e.index, self.now)
        for p in self._awaiting_apply.pop((sn.id, e.index), []):
            p.done = True  # answered (same term) or failed (another entry took the index)

    def _compact(self, sn: SimNode) -> None:
        assert sn.node is not None
        data = json.dumps(sorted(sn.kv.items())).encode()
        sn.storage.create_snapshot(sn.applied, sn.node.conf_state(), data)
        sn.storage.compact(sn.applied - self.rng.randint(0, 3))

    def _check_leaders(self) -> None:
        for sn in self.nodes.values():
            if sn.node is not None and sn.node.role is Role.LEADER:
                self.checker.check_leader(sn)

    def log_event(self, text: str) -> None:
        """Record a fault or lifecycle event in the trace, when tracing."""
        if self.trace is not None:
            self.trace.append(f"t={self.now} {text}")

    # -- observations -----------------------------------------------------------------------

    def leader(self) -> SimNode | None:
        """The live leader with the highest term, if any."""
        leaders = [sn for sn in self.nodes.values() if sn.node is not None and sn.node.role is Role.LEADER]
        return max(leaders, key=lambda sn: sn.node.term, default=None)  # type: ignore[union-attr]

    def stable_leader(self) -> SimNode | None:
        """A leader that every live member (in its configuration) follows in its own term."""
        lead = self.leader()
        if lead is None or lead.node is None:
            return None
        term = lead.node.term
        for member in lead.node.voters | lead.node.learners:
            sn = self.nodes[member]
            if sn.node is not None and (sn.node.term != term or sn.node.lead != lead.id):
                return None
        return lead

    # -- key-value clients ------------------------------------------------------------------

    def _new_op(self, client: int, kind: str, key: str, value: str | None) -> Operation:
        self._next_op += 1
        return Operation(client=client, key=key, kind=kind, value=value, call=self.now, ret=math.inf)

    def put(self, client: int, node_id: int, key: str, value: str) -> PendingOp | None:
        """Propose a write through ``node_id``; None if it refused at once (not leader, ...)."""
        sn = self.nodes[node_id]
        if sn.node is None:
            return None
        try:
            term, index = sn.node.propose(encode_put(key, value))
        except (NotLeader, ProposalDropped):
            return None
        op = self._new_op(client, "put", key, value)
        self.history.append(op)
        pending = PendingOp(op, node_id, term, index)
        self._puts.append(pending)
        self._awaiting_apply.setdefault((node_id, index), []).append(pending)
        return pending

    def get(self, client: int, node_id: int, key: str) -> PendingOp | None:
        """Start a linearizable read through ``node_id``; None if it refused at once."""
        sn = self.nodes[node_id]
        if sn.node is None:
            return None
        op = self._new_op(client, "get", key, None)
        context = f"read-{self._next_op}".encode()
        try:
            sn.node.read_index(context)
        except NotLeader:
            return None
        self.history.append(op)
        pending = PendingOp(op, node_id)
        self._pending_reads[(node_id, context)] = pending
        return pending

    def _serve_reads(self, sn: SimNode) -> None:
        still = []
        for node_id, index, p in self._waiting_reads:
            if node_id == sn.id and sn.applied >= index:
                p.op.value = sn.kv.get(p.op.key)
                p.op.ret = self.now
                p.done = True
            else:
                still.append((node_id, index, p))
        self._waiting_reads = still

    def finished_history(self) -> list[Operation]:
        """The history to check, with each write resolved through the committed log.

        A write returns when its entry was first applied anywhere (it was committed, hence in
        effect, by then). A write whose index holds another entry never took effect and is
        dropped, as are reads that never returned. Writes still undecided keep no return time.
        """
        dropped: set[int] = set()
        applied = self.checker.applied
        for p in self._puts:
            known = applied.get(p.index)
            if known is None:
                continue
            if known == (p.term, encode_put(p.op.key, p.op.value or "")):
                p.op.ret = self._first_applied[p.index]
            else:
                dropped.add(id(p.op))
        return [
            op for op in self.history
            if id(op) not in dropped and not (op.kind == "get" and op.ret == math.inf)
        ]
