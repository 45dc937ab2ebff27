"""Serving the route table: listeners on a unix socket (and TCP), one task per connection.

Every request gets an answer: an error raised by a handler becomes Docker's
``{"message": ...}`` body with the matching status, and an unexpected exception a 500 that
is logged with its traceback. A streamed response is cancelled when its client goes away.
"""

from __future__ import annotations

import grp
import logging
import os
import socket as _socket
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h11
import trio

from shoal import __version__
from shoal.errors import Conflict, Forbidden, InvalidArgument, NotFound, NotModified, ShoalError, Unavailable

from .http import READ_SIZE, Hijack, HttpConnection, HttpError, RawStream, Request, Response, hijack_head, response_headers
from .routes import API_VERSION, RouteTable, split_version

log = logging.getLogger("shoal.engine_api")

#: Headers every response carries, as Docker's daemon sends them.
SERVER_HEADERS: Mapping[str, str] = {
    "Api-Version": API_VERSION,
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Server": f"shoal/{__version__} (linux)",
}


def error_response(exc: BaseException) -> Response:
    """Docker's answer for an error raised while handling a request."""
    if isinstance(exc, HttpError):
        return Response.error(exc.status, exc.message)
    if isinstance(exc, NotFound):
        return Response.error(404, str(exc))
    if isinstance(exc, Conflict):
        return Response.error(409, str(exc))
    if isinstance(exc, InvalidArgument):
        return Response.error(400, str(exc))
    if isinstance(exc, Forbidden):
        return Response.error(403, str(exc))
    if isinstance(exc, NotModified):
        return Response.error(304, str(exc))
    if isinstance(exc, Unavailable):
        return Response.error(503, str(exc))
    if isinstance(exc, ShoalError):
        return Response.error(500, str(exc))
    return Response.error(500, f"internal error: {type(exc).__name__}: {exc}")


class ApiServer:
    """Answers HTTP connections from a route table."""

    def __init__(self, routes: RouteTable) -> None:
        self.routes = routes

    async def handle_connection(self, stream: trio.abc.Stream) -> None:
        """Serve requests on one connection until either side closes it."""
        conn = HttpConnection(stream)
        try:
            while await self._serve_one(conn):
                conn.h11.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass  # the client went away
        except h11.RemoteProtocolError as exc:
            await self._refuse(conn, exc)
        finally:
            await trio.aclose_forcefully(stream)

    async def _refuse(self, conn: HttpConnection, exc: h11.RemoteProtocolError) -> None:
        if conn.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        response = Response.error(exc.error_status_hint, f"bad request: {exc}")
        try:
            await conn.send(h11.Response(status_code=response.status, headers=response_headers(response, SERVER_HEADERS)))
            await conn.send(h11.Data(data=response.body))
            await conn.send(h11.EndOfMessage())
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            pass

    async def _serve_one(self, conn: HttpConnection) -> bool:
        """Answer one request; False when the connection must close."""
        event = await conn.next_event()
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return False
        if not isinstance(event, h11.Request):
            raise h11.RemoteProtocolError(f"expected a request, got {type(event).__name__}", 400)
        request = Request(conn, event)
        response = await self._dispatch(request)
        if isinstance(response, Hijack):
            await self._hijack(conn, request, response)
            return False
        if not request.body_done:
            # Read what the handler left so the next request starts at its beginning.
            async for _ in request.chunks():
                pass
        await self._send(conn, request, response)
        return conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE

    async def _dispatch(self, request: Request) -> Response | Hijack:
        try:
            request.api_version, request.path = split_version(request.raw_path)
            handler, request.params = self.routes.resolve(request.method, request.path)
            return await handler(request)
        except (HttpError, ShoalError) as exc:
            return error_response(exc)
        except Exception as exc:
            log.exception("%s %s failed", request.method, request.target)
            return error_response(exc)

    async def _send(self, conn: HttpConnection, request: Request, response: Response) -> None:
        headers = response_headers(response, SERVER_HEADERS)
        await conn.send(h11.Response(status_code=response.status, headers=headers))
        body = response.body
        if isinstance(body, bytes):
            if body and request.method != "HEAD" and response.status not in (204, 304):
                await conn.send(h11.Data(data=body))
        elif request.method == "HEAD":
            await _aclose(body)
        else:
            await self._stream_body(conn, request, body)
        await conn.send(h11.EndOfMessage())

    async def _stream_body(self, conn: HttpConnection, request: Request, body: Any) -> None:
        """Send chunks as the iterator yields them, until it ends or the client leaves."""
        gone = False

        async def watch_for_disconnect(cancel: trio.CancelScope) -> None:
            nonlocal gone
            # A client that closes its side ends the stream (curl, docker logs -f ^C).
            while True:
                try:
                    data = await conn.stream.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    gone = True
                    cancel.cancel()
                    return
                conn.h11.receive_data(data)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_for_disconnect, nursery.cancel_scope)
                try:
                    async for chunk in body:
                        if chunk:
                            await conn.send(h11.Data(data=chunk))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    gone = True
                except Exception:
                    # The head is sent: all we can do is log and cut the response short.
                    log.exception("%s %s failed while streaming", request.method, request.target)
                    gone = True
                finally:
                    await _aclose(body)
                nursery.cancel_scope.cancel()
        finally:
            if gone:
                raise trio.ClosedResourceError("client went away during a streamed response")

    async def _hijack(self, conn: HttpConnection, request: Request, hijack: Hijack) -> None:
        if not request.body_done:
            async for _ in request.chunks():
                pass
        pending, eof = conn.h11.trailing_data
        try:
            await conn.send_raw(hijack_head(request.wants_upgrade, hijack.content_type, SERVER_HEADERS))
        except BaseException:
            if hijack.abandon is not None:
                with trio.CancelScope(shield=True):
                    await hijack.abandon()
            raise
        try:
            await hijack.run(RawStream(conn.stream, bytes(pending), eof))
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass
        except Exception:
            log.exception("%s %s failed after the connection was hijacked", request.method, request.target)


async def _aclose(body: Any) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        with trio.CancelScope(shield=True):
            await aclose()


# --------------------------------------------------------------------------- listeners


async def open_unix_listener(path: str, mode: int, group: str = "") -> trio.SocketListener:
    """Listen on a unix socket, replacing a stale socket file left by an earlier run."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        if not stat.S_ISSOCK(target.lstat().st_mode):
            raise ShoalError(f"{path} exists and is not a socket; refusing to replace it")
        target.unlink()
    sock = trio.socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        os.chmod(path, mode)
        if group:
            try:
                gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
            except KeyError:
                raise ShoalError(f"socket group {group!r} does not exist") from None
            os.chown(path, -1, gid)
        sock.listen(128)
    except BaseException:
        sock.close()
        target.unlink(missing_ok=True)
        raise
    return trio.SocketListener(sock)


async def open_tcp_listener(address: str) -> trio.SocketListener:
    """Listen on "host:port" (an empty host: every interface)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ShoalError(f"tcp address {address!r} must be host:port")
    listeners = await trio.open_tcp_listeners(int(port), host=host.strip("[]") or None)
    for extra in listeners[1:]:
        await extra.aclose()
    return listeners[0]


async def serve(
    server: ApiServer,
    socket_path: str,
    *,
    socket_mode: int = 0o660,
    socket_group: str = "",
    tcp: str = "",
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; started with the addresses listened on. Removes the socket on exit."""
    listeners = [await open_unix_listener(socket_path, socket_mode, socket_group)]
    addresses = [f"unix://{socket_path}"]
    try:
        if tcp:
            listeners.append(await open_tcp_listener(tcp))
            host, port = listeners[-1].socket.getsockname()[:2]
            addresses.append(f"tcp://{host}:{port}")
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(trio.serve_listeners, server.handle_connection, [listener])
            log.info("engine API listening on %s", ", ".join(addresses))
            task_status.started(addresses)
    finally:
        for listener in listeners:
            with trio.CancelScope(shield=True):
                await listener.aclose()
        Path(socket_path).unlink(missing_ok=True)
