"""Byte-stream transports between Raft nodes: TCP with mutual TLS, and in memory for tests.

Both implement the ``Transport`` slot protocol (``connect`` and ``serve``); ``network.Peers``
frames Raft traffic on top of either.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing

from .tls_socket import TlsSocketStream, wrap

Handler = Callable[[trio.abc.Stream, str], Awaitable[None]]


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    return host.strip("[]"), int(port)


def _peer_name(stream: TlsSocketStream) -> str:
    cert = stream.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


class TlsTransport:
    """TCP with mutual TLS: both ends present a certificate signed by the cluster's CA.

    Its streams are ``tls_socket.TlsSocketStream``s: OpenSSL works on the socket directly.
    """

    def __init__(self, listen: str, cert_file: str, key_file: str, ca_file: str) -> None:
        self.listen = listen
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_file)
        self.server_context.load_cert_chain(cert_file, key_file)
        self.server_context.verify_mode = ssl.CERT_REQUIRED
        self.client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
        self.client_context.load_cert_chain(cert_file, key_file)
        # Peers are addressed by IP and identified by their certificate's CA signature, not a host name.
        self.client_context.check_hostname = False

    async def connect(self, address: str) -> trio.abc.Stream:
        host, port = split_address(address)
        tcp = await trio.open_tcp_stream(host, port)
        stream = TlsSocketStream(wrap(tcp, self.client_context, server_side=False))
        try:
            await stream.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return stream

    async def serve(self, handler: Handler, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        host, port = split_address(self.listen)
        listeners = await trio.open_tcp_listeners(port, host=host)
        address = "%s:%d" % listeners[0].socket.getsockname()[:2]

        async def accept(tcp: trio.SocketStream) -> None:
            stream = TlsSocketStream(wrap(tcp, self.server_context, server_side=True))
            try:
                with trio.fail_after(10):
                    await stream.do_handshake()
            except (trio.BrokenResourceError, trio.TooSlowError, OSError):
                await trio.aclose_forcefully(stream)
                return
            async with stream:
                await handler(stream, _peer_name(stream))

        await trio.serve_listeners(accept, listeners, task_status=StartedWith(task_status, address))  # type: ignore[arg-type]


class StartedWith:
    """A task status for ``serve_listeners`` that reports ``value`` instead of the listeners."""

    def __init__(self, task_status: trio.TaskStatus[Any], value: Any) -> None:
        self.task_status = task_status
        self.value = value

    def started(self, _listeners: object = None) -> None:
        self.task_status.started(self.value)


class TcpTransport:
    """Plain TCP, for loopback tests and benchmarks where TLS is not the point."""

    def __init__(self, listen: str) -> None:
        self.listen = listen

    async def connect(self, address: str) -> trio.abc.Stream:
        host, port = split_address(address)
        stream = await trio.open_tcp_stream(host, port)
        stream.setsockopt(6, 1, 1)  # TCP_NODELAY: Raft messages are small and latency-bound
        return stream

    async def serve(self, handler: Handler, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        host, port = split_address(self.listen)
        listeners = await trio.open_tcp_listeners(port, host=host)
        address = "%s:%d" % listeners[0].socket.getsockname()[:2]

        async def accept(stream: trio.SocketStream) -> None:
            stream.setsockopt(6, 1, 1)
            async with stream:
                await handler(stream, "")

        await trio.serve_listeners(accept, listeners, task_status=StartedWith(task_status, address))  # type: ignore[arg-type]


class MemoryHub:
    """An in-process network of ``MemoryTransport`` endpoints, with faults for tests."""

    def __init__(self) -> None:
        self._servers: dict[str, tuple[trio.Nursery, Handler]] = {}
        self._streams: dict[str, list[trio.abc.Stream]] = {}
        self.down: set[str] = set()

    def transport(self, address: str) -> MemoryTransport:
        return MemoryTransport(self, address)

    def disconnect(self, address: str) -> None:
        """Cut ``address`` off: its streams break and connections to or from it fail until ``reconnect``."""
        self.down.add(address)
        for stream in self._streams.pop(address, []):
            _break(stream)

    def reconnect(self, address: str) -> None:
        self.down.discard(address)

    def _track(self, address: str, stream: trio.abc.Stream) -> None:
        self._streams.setdefault(address, []).append(stream)


def _break(stream: trio.abc.Stream) -> None:
    for half in (stream.send_stream, stream.receive_stream):  # type: ignore[attr-defined]
        half.close()


class MemoryTransport:
    """One endpoint of a ``MemoryHub``; ``address`` is its name on the hub."""

    def __init__(self, hub: MemoryHub, address: str) -> None:
        self.hub = hub
        self.address = address

    async def connect(self, address: str) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        server = self.hub._servers.get(address)
        if server is None or address in self.hub.down or self.address in self.hub.down:
            raise OSError(f"connection to {address} refused")
        ours, theirs = trio.testing.memory_stream_pair()
        for end in (ours, theirs):
            self.hub._track(self.address, end)
            self.hub._track(address, end)
        nursery, handler = server
        nursery.start_soon(handler, theirs, self.address)
        return ours

    async def serve(self, handler: Handler, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self.hub._servers[self.address] = (nursery, handler)
            try:
                task_status.started(self.address)
                await trio.sleep_forever()
            finally:
                del self.hub._servers[self.address]
                self.hub.disconnect(self.address)
                self.hub.reconnect(self.address)
