"""The registry service: listen on TCP (plain or TLS) and serve the Distribution API."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import trio

from shoal.errors import InvalidArgument
from shoal.plugins.engine_api.server import open_tcp_listener

from .htpasswd import Htpasswd
from .server import RegistryServer
from .storage import RegistryStorage

log = logging.getLogger("shoal.plugins.registry")


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context from PEM files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"cannot load the registry's TLS certificate {cert} / key {key}: {exc}") from None
    return context


def build_server(root: Path, htpasswd: str = "", realm: str = "shoal-registry", delete_enabled: bool = True) -> RegistryServer:
    """Open the storage (collecting garbage left from earlier runs) and make the server."""
    storage = RegistryStorage(root)
    removed = storage.gc()
    if removed:
        log.info("registry: removed %d unreferenced blobs", len(removed))
    return RegistryServer(storage, Htpasswd.load(htpasswd) if htpasswd else None, realm, delete_enabled)


async def serve(server: RegistryServer, address: str, context: ssl.SSLContext | None = None,
                *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
    """Serve until cancelled; started with the "host:port" actually listened on."""
    listener: trio.abc.Listener = await open_tcp_listener(address)
    host, port = listener.socket.getsockname()[:2]  # type: ignore[attr-defined]
    if context is not None:
        listener = trio.SSLListener(listener, context, https_compatible=True)
    bound = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, server.handle_connection, [listener])
            log.info("registry listening on %s://%s", "https" if context else "http", bound)
            task_status.started(bound)
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()
