"""Raft traffic between cluster members over a ``Transport``: framing, handshake, reconnects.

Each node keeps one outgoing stream per peer, fed by a bounded queue: when a peer is slow or
gone the queue fills and further messages are dropped and reported unreachable (Raft resends
what matters), so a dead peer never stalls the others. The driver's own frames (Raft
messages, answers to forwarded proposals) wait in an outbox until it calls ``flush``: then each
peer whose queue is empty and whose stream can send without waiting (``send_nowait``) gets them
in one write from the driver itself, with no switch to the sender task. Proposals forwarded by
clients go through the queue, where the sender batches those that arrive together.

Incoming streams open with a HELLO naming the cluster and the sender; streams from another
cluster or an unknown member are closed at once. A frame is ``length (u32) | kind (u8) |
payload`` and never exceeds ``MAX_FRAME``; snapshots travel as a sequence of chunks reassembled
by the receiver.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from .codec import CodecError, decode_message, encode_message
from .messages import Message, MessageType
from .transport import Handler

log = logging.getLogger("shoal.raft")

#: The largest frame sent or accepted: Raft messages are bounded well below it.
MAX_FRAME = 8 << 20
#: Snapshot bytes per chunk frame.
CHUNK = 1 << 20
#: Frames queued per peer before new ones are dropped.
QUEUE = 4096

HELLO, RAFT, SNAP_CHUNK, FORWARD, FORWARD_REPLY, JOIN = 1, 2, 3, 4, 5, 6

_FRAME = struct.Struct(">IB")
_HELLO = struct.Struct(">QH")
_CHUNK = struct.Struct(">QQ")  # offset, total
_U64 = struct.Struct(">Q")
_REPLY = struct.Struct(">QQQQB")  # request id, term, index, leader, error code


class ProtocolError(Exception):
    """A peer sent something this protocol does not allow; its stream is closed."""


@dataclass(frozen=True)
class ForwardReply:
    """The leader's answer to a forwarded proposal: where it was appended, or why not."""

    request: int
    term: int = 0
    index: int = 0
    leader: int = 0
    #: 0: appended; 1: not the leader; 2: too large; 3: dropped (retry later).
    error: int = 0
    message: str = ""

    def encode(self) -> bytes:
        return _REPLY.pack(self.request, self.term, self.index, self.leader, self.error) + self.message.encode()

    @classmethod
    def decode(cls, data: bytes) -> ForwardReply:
        request, term, index, leader, error = _REPLY.unpack_from(data)
        return cls(request, term, index, leader, error, data[_REPLY.size :].decode(errors="replace"))


class FrameReader:
    """Reads whole frames from a stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def _fill(self, size: int) -> bool:
        while len(self.buffer) < size:
            data = await self.stream.receive_some(max(65536, size - len(self.buffer)))
            if not data:
                return False
            self.buffer += data
        return True

    async def read(self) -> tuple[int, bytes] | None:
        """The next (kind, payload), or None at a clean end of stream."""
        if not await self._fill(_FRAME.size):
            return None
        size, kind = _FRAME.unpack_from(self.buffer)
        if size > MAX_FRAME:
            raise ProtocolError(f"frame of {size} bytes exceeds the {MAX_FRAME}-byte limit")
        if not await self._fill(_FRAME.size + size):
            raise ProtocolError("stream ended inside a frame")
        payload = bytes(self.buffer[_FRAME.size : _FRAME.size + size])
        del self.buffer[: _FRAME.size + size]
        return kind, payload


def frame(kind: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME:
        raise ValueError(f"frame of {len(payload)} bytes exceeds the {MAX_FRAME}-byte limit")
    return _FRAME.pack(len(payload), kind) + payload


def snapshot_frames(m: Message) -> list[bytes]:
    data = encode_message(m)
    return [frame(SNAP_CHUNK, _CHUNK.pack(off, len(data)) + data[off : off + CHUNK]) for off in range(0, len(data), CHUNK)]


class PeerEvents(Protocol):
    """What ``Peers`` reports to the node's driver."""

    def on_message(self, m: Message) -> None: ...

    def on_forward(self, frm: int, request: int, data: bytes) -> None: ...

    def on_reply(self, reply: ForwardReply) -> None: ...

    def on_join(self, node_id: int, address: str) -> None: ...

    def on_unreachable(self, peer: int) -> None: ...

    def on_snapshot(self, peer: int, ok: bool) -> None: ...


class Peers:
    """The member-to-member network of one node.

    ``events`` (the driver) is told what arrives: ``on_message(m)`` receives Raft messages, ``on_forward(frm, request, data)`` proposals that
    followers forward, ``on_reply(reply)`` the answers to ours, ``on_join(id, address)`` the
    requests of new members to be added (the only frames accepted from a node that is not a
    member yet); ``on_unreachable(id)`` and ``on_snapshot(id, ok)`` report delivery problems to
    Raft. Callbacks must not block.
    """

    def __init__(self, transport: object, node_id: int, cluster_id: str, peers: dict[int, str], events: PeerEvents) -> None:
        self.transport = transport
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.peers = {i: a for i, a in peers.items() if i != node_id}
        self.events = events
        self._nursery: trio.Nursery | None = None
        self._queues: dict[int, trio.MemorySendChannel[tuple[list[bytes], bool]]] = {}
        #: Peers whose sender waits on an empty queue, with their stream if it has ``send_nowait``.
        self._idle: dict[int, Any] = {}
        #: Frames of the driver not yet handed to a stream or a queue, per peer.
        self._outbox: dict[int, list[bytes]] = {}
        #: Peers whose outgoing stream is up (for status displays).
        self.connected: set[int] = set()

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve peers and keep a stream to each until cancelled; started with the listen address."""
        async with trio.open_nursery() as nursery:
            handler: Handler = self._serve_stream
            address = await nursery.start(self.transport.serve, handler)  # type: ignore[attr-defined]
            self._nursery = nursery
            for peer_id, peer_address in self.peers.items():
                self._start_sender(peer_id, peer_address)
            task_status.started(address)

    def add(self, node_id: int, address: str) -> None:
        """Start talking to a new member (a no-op for a known one or for this node)."""
        if node_id == self.node_id or node_id in self._queues:
            return
        self.peers[node_id] = address
        if self._nursery is not None:
            self._start_sender(node_id, address)

    def _start_sender(self, peer_id: int, address: str) -> None:
        assert self._nursery is not None
        send, receive = trio.open_memory_channel[tuple[list[bytes], bool]](QUEUE)
        self._queues[peer_id] = send
        self._nursery.start_soon(self._sender, peer_id, address, receive)

    # ------------------------------------------------------------------ sending

    def send(self, m: Message) -> None:
        """Put a Raft message in the outbox (a snapshot straight in the queue); see ``flush``."""
        if m.type is MessageType.SNAP:
            self._flush_to(m.to)
            self._enqueue(m.to, snapshot_frames(m), snapshot=True)
        else:
            self._outbox.setdefault(m.to, []).append(frame(RAFT, encode_message(m)))

    def flush(self) -> None:
        """Send the outbox: one write per peer; a full queue drops and reports as ``send`` says."""
        while self._outbox:
            to, frames = self._outbox.popitem()
            self._enqueue(to, frames, direct=True)

    def _flush_to(self, to: int) -> None:
        frames = self._outbox.pop(to, None)
        if frames:
            self._enqueue(to, frames, direct=True)

    def backlog(self) -> bool:
        """Whether frames wait in a queue for their sender task."""
        return any(queue.statistics().current_buffer_used for queue in self._queues.values())

    def forward(self, to: int, request: int, data: bytes) -> bool:
        return self._enqueue(to, [frame(FORWARD, _U64.pack(request) + data)])

    def reply(self, to: int, reply: ForwardReply) -> None:
        """Put the answer to a forwarded proposal in the outbox; see ``flush``."""
        self._outbox.setdefault(to, []).append(frame(FORWARD_REPLY, reply.encode()))

    def join(self, to: int, address: str) -> None:
        """Ask member ``to`` to add this node, reachable at ``address``, to the cluster."""
        self._enqueue(to, [frame(JOIN, address.encode())])

    def _enqueue(self, to: int, frames: list[bytes], snapshot: bool = False, direct: bool = False) -> bool:
        queue = self._queues.get(to)
        if queue is None:
            if snapshot:
                self.events.on_snapshot(to, False)
            return False
        stream = self._idle.get(to) if direct else None
        if stream is not None:
            data = b"".join(frames)
            try:
                sent = stream.send_nowait(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                sent = 0  # the sender meets the same error and reconnects
            if sent == len(data):
                return True
            # The rest goes first through the queue, and so does everything after it.
            del self._idle[to]
            frames = [data[sent:]]
        try:
            queue.send_nowait((frames, snapshot))
        except trio.WouldBlock:
            if snapshot:
                self.events.on_snapshot(to, False)
            else:
                self.events.on_unreachable(to)
            return False
        return True

    async def _sender(self, peer_id: int, address: str, queue: trio.MemoryReceiveChannel[tuple[list[bytes], bool]]) -> None:
        backoff = 0.02
        hello = frame(HELLO, _HELLO.pack(self.node_id, len(self.cluster_id.encode())) + self.cluster_id.encode())
        while True:
            try:
                stream = await self.transport.connect(address)  # type: ignore[attr-defined]
            except (OSError, trio.BrokenResourceError) as exc:
                log.debug("raft node %d: cannot reach node %d at %s: %s", self.node_id, peer_id, address, exc)
                self._fail_queued(peer_id, queue)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.02
            self.connected.add(peer_id)
            snapshots = 0  # snapshots in the batch being written: a broken stream fails them
            try:
                async with stream:
                    await stream.send_all(hello)
                    direct = stream if hasattr(stream, "send_nowait") else None
                    while True:
                        try:
                            frames, snapshot = queue.receive_nowait()
                        except trio.WouldBlock:
                            if direct is not None:  # senders may write straight to the stream
                                self._idle[peer_id] = direct
                            try:
                                frames, snapshot = await queue.receive()
                            finally:
                                self._idle.pop(peer_id, None)
                        # Batch what else is queued into one write: fewer syscalls under load.
                        batch, snapshots = list(frames), int(snapshot)
                        while len(batch) < 256:
                            try:
                                more, more_snapshot = queue.receive_nowait()
                            except trio.WouldBlock:
                                break
                            batch.extend(more)
                            snapshots += more_snapshot
                        await stream.send_all(b"".join(batch))
                        for _ in range(snapshots):
                            self.events.on_snapshot(peer_id, True)
                        snapshots = 0
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.info("raft node %d: stream to node %d broke: %s", self.node_id, peer_id, exc)
                for _ in range(snapshots):
                    self.events.on_snapshot(peer_id, False)
                self.events.on_unreachable(peer_id)
            finally:
                self.connected.discard(peer_id)

    def _fail_queued(self, peer_id: int, queue: trio.MemoryReceiveChannel[tuple[list[bytes], bool]]) -> None:
        while True:
            try:
                _, snapshot = queue.receive_nowait()
            except trio.WouldBlock:
                return
            if snapshot:
                self.events.on_snapshot(peer_id, False)

    # ------------------------------------------------------------------ receiving

    async def _serve_stream(self, stream: trio.abc.Stream, identity: str) -> None:
        reader = FrameReader(stream)
        try:
            first = await reader.read()
            if first is None or first[0] != HELLO:
                raise ProtocolError("the stream did not open with HELLO")
            peer_id, name_size = _HELLO.unpack_from(first[1])
            cluster = first[1][_HELLO.size : _HELLO.size + name_size].decode(errors="replace")
            if cluster != self.cluster_id:
                raise ProtocolError(f"node {peer_id} belongs to cluster {cluster!r}, not {self.cluster_id!r}")
            assembling = bytearray()
            while True:
                item = await reader.read()
                if item is None:
                    return
                kind, payload = item
                if kind == JOIN:
                    self.events.on_join(peer_id, payload.decode(errors="replace"))
                elif peer_id not in self.peers:
                    raise ProtocolError(f"node {peer_id} is not a member of cluster {self.cluster_id!r}")
                elif kind == RAFT:
                    self._deliver(peer_id, payload)
                elif kind == SNAP_CHUNK:
                    offset, total = _CHUNK.unpack_from(payload)
                    if offset != len(assembling) or total > (1 << 34):
                        raise ProtocolError(f"snapshot chunk at offset {offset} does not follow {len(assembling)}")
                    assembling += payload[_CHUNK.size :]
                    if len(assembling) >= total:
                        self._deliver(peer_id, bytes(assembling))
                        assembling = bytearray()
                elif kind == FORWARD:
                    (request,) = _U64.unpack_from(payload)
                    self.events.on_forward(peer_id, request, payload[_U64.size :])
                elif kind == FORWARD_REPLY:
                    self.events.on_reply(ForwardReply.decode(payload))
                else:
                    raise ProtocolError(f"unknown frame kind {kind}")
        except (ProtocolError, CodecError, struct.error) as exc:
            log.warning("raft node %d: closing a stream from %s: %s", self.node_id, identity or "a peer", exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    def _deliver(self, peer_id: int, payload: bytes) -> None:
        m = decode_message(payload)
        if m.frm != peer_id or m.to != self.node_id:
            raise ProtocolError(f"message from {m.frm} to {m.to} arrived on node {peer_id}'s stream to {self.node_id}")
        self.events.on_message(m)
