"""The embedded DNS responder of user-defined networks.

Each container on a user-defined network gets a UDP socket bound to 127.0.0.11:53 *inside
its own network namespace* (a socket belongs to the namespace it was created in), which the
daemon serves from the host. A query is thus known to come from that container: its name is
looked up among the containers sharing a network with it (names, aliases, short ids); other
names are forwarded to the upstream resolvers from the daemon's own namespace, where the
host's loopback resolvers are reachable too.
"""

from __future__ import annotations

import math
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from .netns import entered

ADDRESS = "127.0.0.11"
TYPE_A = 1
CLASS_IN = 1
NOERROR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 2, 3, 4
TTL = 600
FORWARD_TIMEOUT = 3.0


class DnsFormatError(ValueError):
    """A packet that is not a DNS query we can parse."""


@dataclass(frozen=True)
class Query:
    """The parts of a query the responder needs."""

    id: int
    flags: int
    name: str  # lower case, no trailing dot
    qtype: int
    qclass: int
    question: bytes  # the question section as received, echoed in the answer


def parse_query(packet: bytes) -> Query:
    """Decode the header and the first question of a query."""
    if len(packet) < 12:
        raise DnsFormatError("short packet")
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount < 1:
        raise DnsFormatError("not a query")
    labels, pos = [], 12
    while True:
        if pos >= len(packet):
            raise DnsFormatError("truncated name")
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise DnsFormatError("compressed name in a question")
        labels.append(packet[pos : pos + length].decode("ascii", "replace"))
        pos += length
    if pos + 4 > len(packet):
        raise DnsFormatError("truncated question")
    qtype, qclass = struct.unpack("!HH", packet[pos : pos + 4])
    return Query(qid, flags, ".".join(labels).lower(), qtype, qclass, packet[12 : pos + 4])


def answer(query: Query, addresses: Sequence[str], rcode: int = NOERROR) -> bytes:
    """A response carrying A records for ``addresses`` (recursion available, authoritative)."""
    flags = 0x8000 | 0x0400 | (query.flags & 0x7900) | 0x0080 | rcode  # QR AA opcode RD RA
    records = b"".join(
        struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(a) for a in addresses
    )
    return struct.pack("!HHHHHH", query.id, flags, 1, len(addresses), 0, 0) + query.question + records


def failure(packet: bytes, rcode: int) -> bytes | None:
    """An error response echoing whatever header and question could be read (None: not a query)."""
    try:
        return answer(parse_query(packet), [], rcode)
    except DnsFormatError:
        return None


def open_socket(netns: str) -> socket.socket:
    """A UDP socket on 127.0.0.11:53 inside the namespace at ``netns`` (blocking: a thread)."""
    with entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((ADDRESS, 53))
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


#: (container id, name) -> the addresses answering it, or None when the name is not ours.
Resolver = Callable[[str, str], "list[str] | None"]


class DnsServer:
    """Serves every container's DNS socket from one service task."""

    def __init__(self, resolve: Resolver, upstreams: Callable[[str], Sequence[tuple[str, int]]]) -> None:
        self._resolve = resolve
        self._upstreams = upstreams
        self._send, self._receive = trio.open_memory_channel[tuple[str, socket.socket, trio.CancelScope]](math.inf)
        self._scopes: dict[str, trio.CancelScope] = {}

    def serve(self, container: str, sock: socket.socket) -> None:
        """Start answering on a container's socket (replacing one it had)."""
        self.stop(container)
        scope = trio.CancelScope()
        self._scopes[container] = scope
        self._send.send_nowait((container, sock, scope))

    def stop(self, container: str) -> None:
        """Stop answering a container; its socket is closed."""
        scope = self._scopes.pop(container, None)
        if scope is not None:
            scope.cancel()

    def serving(self, container: str) -> bool:
        return container in self._scopes

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The service: hosts one task per container socket."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            async for container, sock, scope in self._receive:
                nursery.start_soon(self._serve_socket, container, sock, scope)

    async def _serve_socket(self, container: str, raw: socket.socket, scope: trio.CancelScope) -> None:
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            with scope:
                async with trio.open_nursery() as nursery:
                    while True:
                        packet, peer = await sock.recvfrom(4096)
                        nursery.start_soon(self._reply, container, sock, packet, peer)
        finally:
            sock.close()

    async def _reply(self, container: str, sock: trio.socket.SocketType, packet: bytes, peer: tuple[str, int]) -> None:
        response = await self.respond(container, packet)
        if response is not None:
            try:
                await sock.sendto(response, peer)
            except OSError:
                pass  # the client went away: nothing to tell it

    async def respond(self, container: str, packet: bytes) -> bytes | None:
        """The response to one query packet from ``container`` (None: drop it)."""
        try:
            query = parse_query(packet)
        except DnsFormatError:
            return failure(packet, SERVFAIL)
        if query.qclass == CLASS_IN and query.name:
            addresses = self._resolve(container, query.name)
            if addresses is not None:
                # A name of ours: A records, and an empty answer (not NXDOMAIN) for other types.
                return answer(query, addresses if query.qtype == TYPE_A else [])
        return await self._forward(container, packet, query)

    async def _forward(self, container: str, packet: bytes, query: Query) -> bytes:
        for host, port in self._upstreams(container):
            with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as upstream:
                try:
                    await upstream.connect((host, port))
                    await upstream.send(packet)
                    with trio.move_on_after(FORWARD_TIMEOUT):
                        while True:
                            reply = await upstream.recv(65535)
                            if reply[:2] == packet[:2]:
                                return reply
                except OSError:
                    continue
        return answer(query, [], SERVFAIL)
