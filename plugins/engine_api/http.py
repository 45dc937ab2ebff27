"""The HTTP/1.1 layer: requests and responses over one trio stream, with h11.

A connection carries requests one after another (keep-alive). A handler answers each with
a ``Response`` (a whole body, or an async iterator of chunks sent as they come) or a
``Hijack``: after its response head the connection stops being HTTP and carries raw bytes
both ways, as Docker's attach and exec do.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11
import trio

from shoal.errors import InvalidArgument

#: Bytes read from the socket at a time.
READ_SIZE = 65536
#: A JSON request body larger than this is refused (bodies meant to be large are streamed).
MAX_JSON_BODY = 16 * 1024 * 1024
#: Longest request head accepted.
MAX_HEAD = 64 * 1024

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class HttpError(Exception):
    """An error answered with a status and Docker's ``{"message": ...}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Request:
    """One HTTP request, as a handler sees it.

    ``path`` has the ``/v1.NN`` prefix removed (``api_version`` holds it, or None) and
    ``params`` the values of the route pattern's ``{placeholders}``.
    """

    def __init__(self, conn: HttpConnection, event: h11.Request) -> None:
        self._conn = conn
        self.method = event.method.decode("ascii").upper()
        self.target = event.target.decode("latin-1")
        split = urlsplit(self.target)
        self.raw_path = unquote(split.path)
        self.path = self.raw_path
        self.api_version: str | None = None
        self.query: dict[str, list[str]] = parse_qs(split.query, keep_blank_values=True)
        #: Header names in lower case; a repeated header keeps its last value.
        self.headers: dict[str, str] = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        self.params: dict[str, str] = {}
        self.body_done = False

    # ---------------------------------------------------------------- query string

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter, or ``default`` when absent."""
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter ("1", "true"... or "0", "false"...)."""
        value = self.arg(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise InvalidArgument(f"invalid value for query parameter {name!r}: {value!r} is not a boolean")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        """An integer query parameter, or ``default`` when absent or empty."""
        value = self.arg(name)
        if value is None or value.strip() == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidArgument(f"invalid value for query parameter {name!r}: {value!r} is not an integer") from None

    def json_arg(self, name: str) -> Any:
        """A query parameter holding JSON (``filters``), or None when absent or empty."""
        value = self.arg(name)
        if not value:
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"invalid JSON in query parameter {name!r}: {exc}") from None

    # ---------------------------------------------------------------- body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The request body, chunk by chunk as it arrives (read at most once)."""
        if self.body_done:
            return
        while True:
            event = await self._conn.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.body_done = True
                return
            else:
                raise HttpError(400, f"unexpected {type(event).__name__} in the request body")

    async def body(self, limit: int = MAX_JSON_BODY) -> bytes:
        """The whole request body; a body over ``limit`` bytes is a 413."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"request body larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def json(self, *, required: bool = False) -> dict[str, Any] | None:
        """The body decoded as a JSON object; None for an empty body unless ``required``."""
        raw = await self.body()
        if not raw.strip():
            if required:
                raise InvalidArgument("the request body is empty; expected a JSON object")
            return None
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"invalid JSON in the request body: {exc}") from None
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            raise InvalidArgument(f"the request body must be a JSON object, not {type(value).__name__}")
        return value

    @property
    def wants_upgrade(self) -> bool:
        """The client asked to take the connection over (``Connection: Upgrade``, ``Upgrade: tcp``)."""
        connection = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        return "upgrade" in connection and self.headers.get("upgrade", "").strip().lower() == "tcp"


Body = bytes | AsyncIterator[bytes]


@dataclass
class Response:
    """A handler's answer: a whole ``bytes`` body, or an async iterator streamed as chunks.

    A streamed response sends its head at once, then each chunk as the iterator yields it.
    """

    status: int = 200
    body: Body = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        """A JSON body."""
        return cls(status, json.dumps(value).encode() + b"\n", "application/json")

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        """No body (204, 304, or a bare 200/201)."""
        return cls(status)

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        """Docker's error body."""
        return cls.json({"message": message}, status)


class RawStream:
    """The socket of a hijacked connection, with the bytes h11 had already read."""

    def __init__(self, stream: trio.abc.Stream, pending: bytes, eof: bool) -> None:
        self._stream = stream
        self._pending = pending
        self._eof = eof

    async def receive_some(self) -> bytes:
        """Next bytes from the client; b"" once it closed its write side."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self._eof:
            return b""
        try:
            return await self._stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def send_all(self, data: bytes) -> None:
        """Send bytes to the client."""
        await self._stream.send_all(data)

    async def send_eof(self) -> None:
        """Close our write side, when the stream supports half-close."""
        send_eof = getattr(self._stream, "send_eof", None)
        if send_eof is not None:
            try:
                await send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


@dataclass
class Hijack:
    """Take the connection over after the response head; ``run`` then owns the raw stream.

    The head is ``101 UPGRADED`` when the client asked for an upgrade, else ``200 OK``;
    both carry ``content_type``. The connection closes when ``run`` returns.
    """

    run: Callable[[RawStream], Awaitable[None]]
    content_type: str
    #: Releases what ``run`` would have (an attachment) if the head cannot be sent.
    abandon: Callable[[], Awaitable[None]] | None = None


Handler = Callable[[Request], Awaitable[Response | Hijack]]


class HttpConnection:
    """h11 state and the socket of one client connection."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)

    async def next_event(self) -> Any:
        """The next h11 event, reading from the socket as needed."""
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            self.h11.receive_data(data)

    async def send(self, event: Any) -> None:
        """Send an h11 event."""
        data = self.h11.send(event)
        if data:
            await self.stream.send_all(data)

    async def send_raw(self, data: bytes) -> None:
        """Send bytes outside h11 (a hijack's response head)."""
        await self.stream.send_all(data)


def response_headers(response: Response, extra: Mapping[str, str]) -> list[tuple[str, str]]:
    """The head of a response: the server-wide headers, then the response's own."""
    headers = list(extra.items())
    if response.content_type:
        headers.append(("Content-Type", response.content_type))
    headers.extend(response.headers)
    if isinstance(response.body, bytes):
        headers.append(("Content-Length", str(len(response.body))))
    return headers


def hijack_head(upgrade: bool, content_type: str, extra: Mapping[str, str]) -> bytes:
    """The response head that hands the connection over to raw streaming."""
    lines = ["HTTP/1.1 101 UPGRADED" if upgrade else "HTTP/1.1 200 OK", f"Content-Type: {content_type}"]
    if upgrade:
        lines += ["Connection: Upgrade", "Upgrade: tcp"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
