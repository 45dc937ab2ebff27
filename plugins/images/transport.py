"""httpx's HTTP transport for registries, reading the network in large pieces.

httpcore asks the socket for at most 64 KiB at a time; a layer of a hundred megabytes then
costs thousands of trips through the HTTP stack and the event loop, and on a fast link
(loopback, a LAN mirror) that Python overhead, not the network, limits the download.
Here every read asks for up to ``READ_SIZE`` bytes; h11 parses whatever it is given, so
only the number of trips changes. A read never waits for more than is already there.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

#: Bytes asked of the socket per read.
READ_SIZE = 1 << 20


class _LargeReadStream(httpcore.AsyncNetworkStream):
    """A connection whose reads ask for at least ``READ_SIZE`` bytes."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max(max_bytes, READ_SIZE), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:  # fmt: skip
        return _LargeReadStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _LargeReadBackend(httpcore.AsyncNetworkBackend):
    """trio networking whose connections read in large pieces."""

    def __init__(self) -> None:
        self._inner = httpcore.TrioBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:  # fmt: skip
        return _LargeReadStream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:  # fmt: skip
        return _LargeReadStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class RegistryTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` over ``_LargeReadBackend`` (direct connections only;
    proxies from the environment keep httpx's own transports)."""

    def __init__(self, context: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=context, limits=limits, trust_env=False)
        # httpx has no parameter for the network backend: replace the pool it built with
        # one configured the same way over ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_LargeReadBackend(),
        )
