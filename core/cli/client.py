"""A small synchronous client for the Docker Engine API that shoald serves on a unix socket.

Plain sockets and a minimal HTTP/1.1 keep the CLI's start-up cheap, and give full control of
what Docker clients need beyond request/response: chunked streams (logs -f, events, stats)
and the connection hijack (``Upgrade: tcp``) of attach and exec, after which the socket
carries raw bytes both ways.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from .. import __version__

API_VERSION = "1.50"
DEFAULT_HOST = "unix:///run/shoal/shoal.sock"
_RECV = 65536


class ClientError(Exception):
    """A problem the CLI reports as one line on stderr."""


class DaemonUnreachable(ClientError):
    """The socket is missing, refuses connections, or is not ours to open."""

    def __init__(self, host: str, cause: OSError) -> None:
        if isinstance(cause, PermissionError):
            text = f"permission denied while trying to connect to shoald at {host}"
        else:
            text = f"cannot connect to shoald at {host}: is it running?"
        super().__init__(text)
        self.host = host


class APIError(ClientError):
    """The daemon answered with an error status; ``message`` is its ``{"message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Error response from daemon: {message}")
        self.status = status
        self.message = message


def resolve_host(explicit: str | None = None) -> str:
    """The daemon address: ``-H/--host``, else ``$SHOAL_HOST``, else the default socket."""
    return explicit or os.environ.get("SHOAL_HOST") or DEFAULT_HOST


def socket_path(host: str) -> str:
    """The filesystem path of a ``unix://`` address (a bare absolute path is accepted too)."""
    if host.startswith("unix://"):
        path = host[len("unix://") :]
    elif host.startswith("/"):
        path = host
    else:
        raise ClientError(f"unsupported host {host!r}: only unix:// sockets are supported")
    if not path:
        raise ClientError(f"invalid host {host!r}: no socket path")
    return path


class _Reader:
    """Buffered reads from a socket that keep any bytes received past the HTTP header."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(_RECV)
        self.buffer += data
        return bool(data)

    def readline(self) -> bytes:
        while (end := self.buffer.find(b"\n")) < 0:
            if not self._fill():
                raise ClientError("the daemon closed the connection unexpectedly")
        line = bytes(self.buffer[: end + 1])
        del self.buffer[: end + 1]
        return line

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ClientError("the daemon closed the connection in the middle of a response")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read_some(self) -> bytes:
        """Whatever is buffered, else one ``recv`` (``b""`` at end of stream)."""
        if self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        return self.sock.recv(_RECV)


class Response:
    """An HTTP response whose body is read lazily from the connection."""

    def __init__(self, sock: socket.socket, reader: _Reader, method: str) -> None:
        self.sock = sock
        self._reader = reader
        status_line = reader.readline().decode("latin-1").rstrip("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ClientError(f"malformed response from the daemon: {status_line!r}")
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers: dict[str, str] = {}
        while line := reader.readline().decode("latin-1").rstrip("\r\n"):
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        no_body = method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self._remaining: int | None = 0 if no_body else (int(length) if length and not self._chunked else None)
        self._done = no_body

    def iter_chunks(self) -> Iterator[bytes]:
        """The body as it arrives, however it is framed."""
        reader = self._reader
        while not self._done:
            if self._chunked:
                size = int(reader.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while reader.readline().strip():  # trailers
                        pass
                    self._done = True
                    break
                data = reader.read_exact(size)
                reader.read_exact(2)
            elif self._remaining is not None:
                if self._remaining == 0:
                    self._done = True
                    break
                data = reader.read_some()[: self._remaining]
                if not data:
                    raise ClientError("the daemon closed the connection in the middle of a response")
                self._remaining -= len(data)
            else:
                data = reader.read_some()
                if not data:
                    self._done = True
                    break
            yield data

    def read(self) -> bytes:
        """The whole body."""
        return b"".join(self.iter_chunks())

    def json(self) -> Any:
        """The body decoded as JSON (None when empty)."""
        body = self.read()
        return json.loads(body) if body.strip() else None

    def iter_lines(self) -> Iterator[bytes]:
        """The body split at newlines, as it arrives (JSON-lines streams)."""
        pending = b""
        for chunk in self.iter_chunks():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from (line for line in lines if line.strip())
        if pending.strip():
            yield pending

    def iter_json(self) -> Iterator[Any]:
        """Each JSON document of a JSON-lines stream."""
        for line in self.iter_lines():
            yield json.loads(line)

    def take_buffered(self) -> bytes:
        """Bytes already received past the header (the start of a hijacked stream)."""
        data = bytes(self._reader.buffer)
        self._reader.buffer.clear()
        return data

    def close(self) -> None:
        """Drop the connection."""
        self.sock.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_message(status: int, body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return document["message"]
    text = body.decode("utf-8", "replace").strip()
    return text or f"HTTP {status}"


class Client:
    """One daemon address; every request opens its own connection (cheap on a unix socket)."""

    def __init__(self, host: str | None = None) -> None:
        self.host = resolve_host(host)
        self.path = socket_path(self.host)

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise DaemonUnreachable(self.host, exc) from None
        return sock

    @staticmethod
    def url(path: str, query: Mapping[str, Any] | None = None) -> str:
        """The versioned request target; None query values are left out, booleans become 1/0."""
        target = f"/v{API_VERSION}{path}"
        if query:
            pairs = {k: (int(v) if isinstance(v, bool) else v) for k, v in query.items() if v is not None}
            if pairs:
                target += "?" + urlencode(pairs)
        return target

    def open(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        *,
        body: Any = None,
        body_writer: Callable[[Callable[[bytes], None]], None] | None = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> Response:
        """Send one request and return the response once its header arrived.

        ``body`` is JSON-encoded (bytes go as they are); ``body_writer`` streams a body with
        chunked encoding: it is called with a ``write(bytes)`` function. With ``check`` an
        error status raises ``APIError`` carrying the daemon's message.
        """
        sock = self._connect()
        try:
            head = [f"{method} {self.url(path, query)} HTTP/1.1", "Host: shoal", f"User-Agent: shoal/{__version__}"]
            extra = dict(headers or {})
            payload = b""
            if body_writer is not None:
                head += [f"Content-Type: {content_type}", "Transfer-Encoding: chunked"]
            elif body is not None:
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                head += [f"Content-Type: {content_type}", f"Content-Length: {len(payload)}"]
            elif method in ("POST", "PUT"):
                head.append("Content-Length: 0")
            extra.setdefault("Connection", "close")
            head += [f"{k}: {v}" for k, v in extra.items()]
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
            if body_writer is not None:

                def write(data: bytes) -> None:
                    if data:
                        sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

                body_writer(write)
                sock.sendall(b"0\r\n\r\n")
            response = Response(sock, _Reader(sock), method)
        except BaseException:
            sock.close()
            raise
        if check and response.status >= 400:
            with response:
                raise APIError(response.status, _error_message(response.status, response.read()))
        return response

    def call(self, method: str, path: str, query: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        """A plain request: the decoded JSON body (None when empty)."""
        with self.open(method, path, query, body=body) as response:
            return response.json()

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        """``GET`` a JSON document."""
        return self.call("GET", path, query)

    def post(self, path: str, query: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        """``POST`` and decode the JSON answer."""
        return self.call("POST", path, query, body)

    def hijack(self, path: str, query: Mapping[str, Any] | None = None, body: Any = None) -> Hijacked:
        """``POST`` asking to upgrade the connection to a raw stream (attach, exec start)."""
        response = self.open("POST", path, query, body=body, headers={"Connection": "Upgrade", "Upgrade": "tcp"})
        if response.status not in (101, 200):
            response.close()
            raise ClientError(f"unexpected answer to a stream request: {response.status} {response.reason}")
        return Hijacked(response)


class Hijacked:
    """The raw two-way stream left after a connection upgrade."""

    def __init__(self, response: Response) -> None:
        self.sock = response.sock
        self.content_type = response.headers.get("content-type", "")
        # An old-style 200 answer may still frame its stream as an HTTP body.
        framed = response.status == 200 and _has_framing(response)
        self._body = response.iter_chunks() if framed else None
        self._pending = b"" if framed else response.take_buffered()

    @property
    def multiplexed(self) -> bool | None:
        """True/False when the daemon said whether it frames the stream, else None."""
        if "multiplexed" in self.content_type:
            return True
        if "raw-stream" in self.content_type:
            return False
        return None

    def recv(self) -> bytes:
        """The next bytes of output; ``b""`` once the daemon closed its side."""
        if self._body is not None:
            return next(self._body, b"")
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        try:
            return self.sock.recv(_RECV)
        except ConnectionResetError:
            return b""

    def send(self, data: bytes) -> None:
        """Bytes for the process's stdin."""
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: the process sees end of input; output keeps flowing."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Drop the connection."""
        self.sock.close()


def _has_framing(response: Response) -> bool:
    return "content-length" in response.headers or "chunked" in response.headers.get("transfer-encoding", "")


def quote_id(name: str) -> str:
    """A container, image or exec reference as one path segment."""
    return quote(name, safe=":@/")
