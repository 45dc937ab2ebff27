"""The trio driver of one Raft node: the Ready/Advance loop, ticks, and client requests.

One task owns the ``RaftNode``. It wakes when something arrives (a peer's message, a tick, a
proposal, a read), feeds everything queued into the node, and then handles each Ready in
order: persist (one write and at most one fsync for all its entries: proposals that arrive
during an fsync are batched into the next one), send, apply, advance. Clients wait on
``Pending`` results resolved when their entry is applied or their read is confirmed.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from .collector import CollectorRelief
from .config import RaftConfig
from .disk_storage import DiskStorage
from .errors import NoQuorum, NotLeader, ProposalDropped, ProposalTooLarge, RaftError
from .messages import ConfChange, ConfChangeType, EntryType, Message, MessageType, Ready, Role, Snapshot, SnapshotMetadata
from .network import ForwardReply, Peers
from .node import RaftNode, Status
from .progress import ProgressState

log = logging.getLogger("shoal.raft")

_NOT_LEADER, _TOO_LARGE, _DROPPED = 1, 2, 3


#: Seconds a snapshot's encoding pauses per second of work: it takes at most a tenth of the loop.
SNAPSHOT_YIELD = 9.0

#: An fsync expected to take less than this many seconds runs on the loop's own thread: handing
#: it to a worker thread and back (two thread switches and the interpreter lock) costs as much.
#: A slower one runs in a worker thread, and the loop serves clients and peers meanwhile.
INLINE_SYNC = 0.002

#: Snapshots hold the members' addresses (length-prefixed JSON), then the state machine's data.
_U32 = struct.Struct(">I")


def _timed(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


class _Retry(Exception):
    """A proposal attempt that certainly or possibly failed, and is safe to make again."""


class _Refused(_Retry):
    """The leader did not append a forwarded proposal; ``code`` says why."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class StateMachine(Protocol):
    """What the driver applies committed entries to."""

    def apply(self, data: bytes) -> Any: ...

    def snapshot(self) -> Iterable[bytes]:
        """Capture the state now; its encoding comes in pieces, each a short burst of work.

        The driver encodes the pieces between its other work, on its own thread: a long encode
        in a worker thread would hold the interpreter lock and stall the loop.
        """
        ...

    def restore(self, data: bytes) -> None: ...


class Pending:
    """A result that a client waits for; set once."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        #: A forwarded proposal's: the leader appended it, and it now waits for the apply.
        self.placed = False

    def set(self, value: Any) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    async def wait(self) -> Any:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value


@dataclass(frozen=True)
class DriverSettings:
    """Timing of the driver around the state machine's ticks."""

    tick_interval: float = 0.05
    #: Seconds a write or read may wait for a quorum before failing with ``NoQuorum``.
    request_timeout: float = 5.0
    #: Applied entries between snapshots (and log compactions), at least; each member adds up to
    #: half again at random (``_next_snapshot_due``). A snapshot also waits
    #: until the entries applied since the last one hold half as many bytes as it did: writing
    #: out the whole state then stays within a small multiple of the bytes written to the log.
    snapshot_entries: int = 10000
    #: Entries kept behind a snapshot, so a briefly lagging follower needs no snapshot.
    catchup_entries: int = 1000
    #: Hide long-lived objects from the garbage collector's full passes as entries are applied
    #: (``collector.CollectorRelief``; it affects the whole process).
    freeze_gc: bool = False


class RaftDriver:
    """Runs a ``RaftNode`` over ``DiskStorage`` and ``Peers``; start ``run`` in a nursery."""

    def __init__(
        self,
        config: RaftConfig,
        storage: DiskStorage,
        machine: StateMachine,
        peers_factory: Callable[[RaftDriver], Peers],
        settings: DriverSettings = DriverSettings(),
        rng: random.Random | None = None,
        *,
        address: str = "",
        join: bool = False,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.machine = machine
        self.id = config.id
        #: This node's address for its peers; with ``join``, it asks them to add it until it is a member.
        self.address = address
        self.join = join
        self.peers = peers_factory(self)
        #: Every member's address (from the config, then from membership changes).
        self.addresses = dict(self.peers.peers)
        if address:
            self.addresses[self.id] = address
        snapshot = storage.snapshot()
        if not snapshot.is_empty():
            self._restore(snapshot.data)
        self.applied = snapshot.index
        #: Bytes of entry data applied since the latest snapshot (since the start, after a restart).
        self._applied_bytes = 0
        self._rng = rng or random.Random(int.from_bytes(os.urandom(8), "big"))
        self.node = RaftNode(config, storage, self._rng)
        self._snapshot_due = self._next_snapshot_due()
        hs = storage.initial_state()[0]
        self._durable_term_vote = (hs.term, hs.vote)
        self._inbox: list[Message] = []
        self._proposals: list[tuple[bytes, Pending]] = []
        self._forwarded: list[tuple[int, int, bytes]] = []
        self._joins: dict[int, str] = {}
        self._reads: list[tuple[bytes, Pending]] = []
        self._reports: list[Callable[[], None]] = []
        self._ticks = 0
        self._wake = trio.Event()
        #: index -> (term, pending) for proposals appended to the log, resolved on apply.
        self._appended: dict[int, list[tuple[int, Pending]]] = {}
        #: read context -> pending; then (index, pending) once the read index is known.
        self._read_waiting: dict[bytes, Pending] = {}
        self._read_ready: list[tuple[int, Pending]] = []
        #: forwarded proposal id -> pending of the (term, index) the leader gives.
        self._replies: dict[int, Pending] = {}
        self._ids = itertools.count(1)
        self._storage_lock = trio.Lock()
        #: Recent fsync duration (a moving average), to choose where the next one runs.
        self._sync_seconds = 0.0
        self._compacting = False
        self._collector = CollectorRelief() if settings.freeze_gc else None
        self._nursery: trio.Nursery | None = None
        self.closed = False

    # ------------------------------------------------------------------ peer callbacks

    def on_message(self, m: Message) -> None:
        self._inbox.append(m)
        if not self.node.acknowledges_nothing_new(m):  # that one waits for the next wake
            self._wake.set()

    def on_forward(self, frm: int, request: int, data: bytes) -> None:
        self._forwarded.append((frm, request, data))
        self._wake.set()

    def on_reply(self, reply: ForwardReply) -> None:
        """The leader's answer to a forwarded proposal: from then on, its waiter waits for the apply."""
        pending = self._replies.pop(reply.request, None)
        if pending is None:
            return
        if reply.error:
            pending.fail(_Refused(reply.error))
        elif reply.index <= self.applied:
            pending.fail(_Retry())  # applied before we could track it: the state machine answers the retry
        else:
            pending.placed = True
            self._appended.setdefault(reply.index, []).append((reply.term, pending))

    def on_join(self, node_id: int, address: str) -> None:
        self._joins[node_id] = address
        self._wake.set()

    def on_unreachable(self, peer: int) -> None:
        self._reports.append(lambda: self.node.report_unreachable(peer))
        self._wake.set()

    def on_snapshot(self, peer: int, ok: bool) -> None:
        self._reports.append(lambda: self.node.report_snapshot(peer, ok))
        self._wake.set()

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; started with the address the node listens on."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            address = await nursery.start(self.peers.run)
            while self.node.has_ready():  # apply what is already committed: the membership first of all
                await self._handle(self.node.ready())
            if self._collector is not None:
                self._collector.freeze()  # what startup built (modules, the replayed state) stays
            nursery.start_soon(self._ticker)
            if self.join:
                nursery.start_soon(self._ask_to_join)
            task_status.started(address)
            try:
                await self._loop()
            finally:
                self.closed = True
                self._fail_all(RaftError(f"Raft node {self.id} is shutting down"))

    async def _ticker(self) -> None:
        interval = self.settings.tick_interval
        next_tick = trio.current_time()
        while True:
            next_tick += interval
            await trio.sleep_until(next_tick)
            self._ticks += 1
            self._wake.set()

    def is_member(self) -> bool:
        return self.id in self.node.voters or self.id in self.node.learners

    async def _ask_to_join(self) -> None:
        """Until the log makes this node a member, ask every known member to add it."""
        while not self.is_member():
            for peer in list(self.peers.peers):
                self.peers.join(peer, self.address)
            await trio.sleep(max(self.settings.tick_interval * 5, 0.1))

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            # Let every task already runnable (clients, peer readers) queue its input first:
            # one Ready, one write and one message per peer then carry all of it.
            await trio.lowlevel.cancel_shielded_checkpoint()
            self._wake = trio.Event()
            self._feed()
            while self.node.has_ready():
                await self._handle(self.node.ready())
                self._feed()
            self.peers.flush()  # answers to forwarded proposals that no Ready carried out

    def _feed(self) -> None:
        node = self.node
        ticks, self._ticks = self._ticks, 0
        for _ in range(ticks):
            node.tick()
        inbox, self._inbox = self._inbox, []
        for m in inbox:
            try:
                node.step(m)
            except RaftError as exc:
                log.warning("raft node %d: dropped a %s message from %d: %s", self.id, m.type.value, m.frm, exc)
        reports, self._reports = self._reports, []
        for report in reports:
            report()
        self._feed_proposals()
        if node.role is Role.LEADER:
            self._feed_membership()
        reads, self._reads = self._reads, []
        for context, pending in reads:
            try:
                node.read_index(context)
            except RaftError as exc:
                pending.fail(exc)
                continue
            self._read_waiting[context] = pending

    def _feed_proposals(self) -> None:
        """Append every queued proposal, local or forwarded, as one batch: one message per peer."""
        batch: list[tuple[bytes, Pending | tuple[int, int]]] = list(self._proposals)
        batch += [(data, (frm, request)) for frm, request, data in self._forwarded]
        self._proposals, self._forwarded = [], []
        if not batch:
            return
        try:
            places = self.node.propose_batch([data for data, _ in batch])
        except ProposalTooLarge:
            for data, waiter in batch:  # find the culprit: the others go in alone
                try:
                    (place,) = self.node.propose_batch([data])
                except RaftError as exc:
                    self._answer(waiter, error=exc)
                else:
                    self._answer(waiter, place=place)
            return
        except RaftError as exc:
            for _, waiter in batch:
                self._answer(waiter, error=exc)
            return
        for place, (_, waiter) in zip(places, batch):
            self._answer(waiter, place=place)

    def _answer(self, waiter: Pending | tuple[int, int], *, place: tuple[int, int] | None = None,
                error: RaftError | None = None) -> None:  # fmt: skip
        """Tell a proposer where its entry went (it then waits for the apply), or why it did not."""
        if isinstance(waiter, Pending):
            if error is not None:
                waiter.fail(error)
            else:
                assert place is not None
                self._appended.setdefault(place[1], []).append((place[0], waiter))
            return
        frm, request = waiter
        if isinstance(error, NotLeader):
            reply = ForwardReply(request, leader=error.leader, error=_NOT_LEADER, message=str(error))
        elif isinstance(error, ProposalTooLarge):
            reply = ForwardReply(request, error=_TOO_LARGE, message=str(error))
        elif error is not None:
            reply = ForwardReply(request, error=_DROPPED, message=str(error))
        else:
            assert place is not None
            reply = ForwardReply(request, term=place[0], index=place[1])
        self.peers.reply(frm, reply)

    def _feed_membership(self) -> None:
        """Add joining nodes as learners, and promote learners that caught up to voters."""
        node = self.node
        joins, self._joins = self._joins, {}
        changes = [ConfChange(ConfChangeType.ADD_LEARNER, node_id, address.encode())
                   for node_id, address in joins.items() if node_id not in node.voters | node.learners]  # fmt: skip
        for learner in sorted(node.learners):
            pr = node.progress.get(learner)
            if pr is not None and pr.state is ProgressState.REPLICATE and \
                    node.log.last_index() - pr.match <= node.config.max_promotion_lag:  # fmt: skip
                changes.append(ConfChange(ConfChangeType.ADD_VOTER, learner, self.addresses.get(learner, "").encode()))
        for change in changes[:1]:  # one change at a time; the rest is asked again later
            try:
                node.propose_conf_change(change)
                log.info("raft node %d: proposing %s of node %d", self.id, change.type.name.lower(), change.node_id)
            except RaftError:
                pass  # another change is pending: the joiner asks again, promotion is retried on the next tick

    async def _handle(self, rd: Ready) -> None:
        if rd.soft_state is not None:
            log.info("raft node %d: %s, leader %d (term %d)", self.id, rd.soft_state.role.value,
                     rd.soft_state.lead, self.node.term)  # fmt: skip
        # A leader may send its entries while it writes them itself (thesis §10.2.1): it counts
        # itself towards a commit only through this loop, which finishes the write before
        # handling any acknowledgment. A new term or vote must be durable before anything is sent.
        hs = rd.hard_state
        new_term_or_vote = hs is not None and (hs.term, hs.vote) != self._durable_term_vote
        early = self.node.role is Role.LEADER and not new_term_or_vote and rd.snapshot is None
        if early:
            self._send_all(rd)
        if rd.snapshot is not None or rd.entries or rd.hard_state is not None:
            async with self._storage_lock:  # not beside a compaction's change of the in-memory log
                if rd.snapshot is not None:
                    await trio.to_thread.run_sync(self.storage.save, rd)
                else:
                    # Records are encoded here; a commit index alone needs no fsync and is
                    # written with the next entries (a stale one after a crash is harmless).
                    self.storage.stage(rd)
                    if rd.must_sync:
                        await self._sync(early and bool(rd.messages))
        if hs is not None:
            self._durable_term_vote = (hs.term, hs.vote)
        if not early:
            self._send_all(rd)
        if rd.snapshot is not None:
            self._restore(rd.snapshot.data)
            self.applied = rd.snapshot.index
            self._applied_bytes = 0
            for index in [i for i in self._appended if i <= self.applied]:
                for _, pending in self._appended.pop(index):
                    pending.fail(ProposalDropped("the outcome of the write is unknown: a snapshot replaced the log"))
        for entry in rd.committed_entries:
            result: Any = None
            if entry.type is EntryType.CONF_CHANGE:
                self._apply_conf_change(ConfChange.decode(entry.data))
            elif entry.data:
                result = self.machine.apply(entry.data)
                self._applied_bytes += len(entry.data)
            self.applied = entry.index
            for term, pending in self._appended.pop(entry.index, []):
                if term == entry.term:
                    pending.set(result)
                else:
                    pending.fail(ProposalDropped("the write was lost in a leader change; retry"))
        for rs in rd.read_states:
            pending = self._read_waiting.pop(rs.context, None)
            if pending is not None:
                self._read_ready.append((rs.index, pending))
        self.node.advance(rd)
        if self._read_ready:
            still = []
            for index, pending in self._read_ready:
                if index <= self.applied:
                    pending.set(index)
                else:
                    still.append((index, pending))
            self._read_ready = still
        if rd.committed_entries and self._collector is not None:
            self._collector.applied(len(rd.committed_entries))
        if rd.committed_entries and not self._compacting:
            latest = self.storage.snapshot()
            enough = self.applied - latest.index >= self._snapshot_due
            if enough and 2 * self._applied_bytes >= len(latest.data):
                self._start_compaction()

    def _next_snapshot_due(self) -> int:
        """Entries after the latest snapshot before the next: ``snapshot_entries`` plus up to half
        again, drawn anew each time, so the members of a group (which apply the same entries)
        do not all slow down for a snapshot at the same moment."""
        entries = self.settings.snapshot_entries
        return entries + self._rng.randrange(entries // 2 + 1)

    async def _sync(self, sent: bool) -> None:
        """Write and fsync what was staged: on this thread while fsyncs are fast, else in a worker."""
        if self._sync_seconds < INLINE_SYNC:
            if sent and self.peers.backlog():
                await trio.lowlevel.checkpoint()  # the peers' senders put the entries on the wire first
            took = _timed(self.storage.sync)
        else:
            took = await trio.to_thread.run_sync(_timed, self.storage.sync)
        self._sync_seconds += (took - self._sync_seconds) * 0.2

    def _send_all(self, rd: Ready) -> None:
        for m in rd.messages:
            self.peers.send(m)
        self.peers.flush()  # one write per peer, from this task while the peer's stream is idle

    def _apply_conf_change(self, change: ConfChange) -> None:
        self.node.apply_conf_change(change)
        if change.type is ConfChangeType.REMOVE_NODE:
            self.addresses.pop(change.node_id, None)
        elif change.context:
            address = change.context.decode()
            self.addresses[change.node_id] = address
            self.peers.add(change.node_id, address)

    def _restore(self, data: bytes) -> None:
        (size,) = _U32.unpack_from(data)
        addresses = json.loads(data[_U32.size : _U32.size + size])
        for node_id, address in addresses.items():
            self.addresses[int(node_id)] = address
            self.peers.add(int(node_id), address)
        self.machine.restore(data[_U32.size + size :])

    def _start_compaction(self) -> None:
        """Snapshot the applied state and compact the log, in the background: the loop goes on."""
        index = self.applied
        meta = SnapshotMetadata(index, self.storage.term(index), self.node.conf_state())
        members = json.dumps({str(i): a for i, a in self.addresses.items()}).encode()
        pieces = self.machine.snapshot()
        self._applied_bytes = 0
        self._snapshot_due = self._next_snapshot_due()
        self._compacting = True
        assert self._nursery is not None
        self._nursery.start_soon(self._compact, meta, members, pieces)

    async def _compact(self, meta: SnapshotMetadata, members: bytes, pieces: Iterable[bytes]) -> None:
        try:
            data = [_U32.pack(len(members)), members]
            pieces = iter(pieces)
            while True:
                started = time.perf_counter()
                piece = next(pieces, None)
                if piece is None:
                    break
                data.append(piece)
                # Encoding shares the loop with clients and peers: short pieces and a small share
                # of its time, so a snapshot slows requests a little for longer, not a lot at once.
                await trio.sleep((time.perf_counter() - started) * SNAPSHOT_YIELD)
            snapshot = Snapshot(meta, b"".join(data))
            await trio.to_thread.run_sync(self.storage.write_snapshot, snapshot)
            async with self._storage_lock:
                # In this thread: the node reads the in-memory log between our awaits.
                self.storage.adopt_snapshot(snapshot)
                keep_from = max(meta.index - self.settings.catchup_entries, self.storage.first_index() - 1)
                self.storage.forget(keep_from)
            await trio.to_thread.run_sync(self.storage.release, keep_from)
        finally:
            self._compacting = False

    def _fail_all(self, error: RaftError) -> None:
        for waiters in self._appended.values():
            for _, pending in waiters:
                pending.fail(error)
        for pending in [*self._read_waiting.values(), *(p for _, p in self._read_ready), *self._replies.values()]:
            pending.fail(error)
        for _, pending in [*self._proposals, *self._reads]:
            pending.fail(error)

    # ------------------------------------------------------------------ client requests

    def _check_open(self) -> None:
        if self.closed:
            raise RaftError(f"Raft node {self.id} is shut down")

    def _no_quorum(self, what: str, note: str = "") -> NoQuorum:
        lead = self.node.lead
        leader = f"leader is node {lead}" if lead else "no leader is known"
        return NoQuorum(
            f"no quorum: {what} within {self.settings.request_timeout:g} s ({leader}, "
            f"{len(self.node.voters)} voters, node {self.id} reaches {len(self.peers.connected)} peers){note}"
        )

    async def propose(self, data: bytes) -> Any:
        """Commit ``data`` and return what the state machine's ``apply`` returned for it.

        A proposal lost to a leader change, or forwarded to a leader that stopped answering, is
        proposed again: the state machine must recognise a command it already applied (by an
        id inside ``data``) and answer with the first outcome. Raises ``NoQuorum`` when nothing
        is committed within the request timeout (the outcome is then unknown) and
        ``ProposalTooLarge``.
        """
        self._check_open()
        if len(data) > self.node.config.max_entry_bytes:
            raise ProposalTooLarge(len(data), self.node.config.max_entry_bytes)
        with trio.move_on_after(self.settings.request_timeout):
            while True:
                try:
                    return await self._propose_once(data)
                except (NotLeader, ProposalDropped, _Retry):
                    await trio.sleep(self.settings.tick_interval)
        raise self._no_quorum("the write was not committed", "; it may still commit once a quorum is back")

    async def _propose_once(self, data: bytes) -> Any:
        pending = Pending()
        if self.node.role is Role.LEADER:
            self._proposals.append((data, pending))
            self._wake.set()
            return await pending.wait()
        lead = self.node.lead
        if not lead:
            raise _Retry()
        request = next(self._ids)
        self._replies[request] = pending
        try:
            if not self.peers.forward(lead, request, data):
                raise _Retry()
            return await self._wait_while_led_by(lead, pending)
        except _Refused as refused:
            if refused.code == _TOO_LARGE:
                raise ProposalTooLarge(len(data), self.node.config.max_entry_bytes) from None
            raise
        finally:
            self._replies.pop(request, None)

    async def _wait_while_led_by(self, lead: int, pending: Pending) -> Any:
        """Wait for a forwarded proposal's outcome; until the leader has appended it, only while
        leadership stays with ``lead`` and not too long."""
        patience = self.settings.tick_interval * self.node.config.election_tick * 2
        deadline = trio.current_time() + patience
        while not pending.placed:
            if trio.current_time() >= deadline or self.node.lead != lead:
                raise _Retry()
            with trio.move_on_after(self.settings.tick_interval):
                return await pending.wait()
        return await pending.wait()

    async def read_barrier(self) -> int:
        """Wait until this node has applied everything committed before the call (ReadIndex, §8)."""
        self._check_open()
        per_try = max(self.settings.tick_interval * self.node.config.election_tick * 2, 0.2)
        with trio.move_on_after(self.settings.request_timeout):
            while True:
                pending = Pending()
                context = os.urandom(16)
                self._reads.append((context, pending))
                self._wake.set()
                try:
                    with trio.move_on_after(per_try):
                        return await pending.wait()
                except NotLeader:
                    await trio.sleep(self.settings.tick_interval)
                finally:
                    self._read_waiting.pop(context, None)
        raise self._no_quorum("the read could not be confirmed by a quorum")

    def status(self) -> Status:
        return self.node.status()

    def campaign(self) -> None:
        """Start an election now, one voters grant even while they hold a restart lease.

        Only for a cluster that never had a leader (nobody's lease to respect): it forms faster
        than the election timeout allows.
        """
        self._reports.append(lambda: self.node.step(Message(MessageType.TIMEOUT_NOW, to=self.id, frm=self.id)))
        self._wake.set()


def quorum_held(status: Status, now_connected: set[int]) -> bool:
    """Whether this node sees a quorum of voters (itself and the peers it is connected to)."""
    reachable = sum(1 for v in status.voters if v == status.id or v in now_connected)
    return reachable >= len(status.voters) // 2 + 1 and status.lead != 0
