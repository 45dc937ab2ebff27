"""A fake shoald for CLI tests: a threaded HTTP/1.1 server on a unix socket that records
every request and plays a tiny container engine (create, attach with hijack, wait, start).

It is deliberately independent of the client's code: it parses HTTP itself, frames output
as Docker does, and honours stdin half-close on hijacked connections.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Handler = Callable[["Exchange"], None]


@dataclass
class Request:
    """One request as the fake received it (the ``/v1.xx`` prefix stripped from ``path``)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    version: str = ""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Exchange:
    """The server side of one request: reply in one of several ways."""

    def __init__(self, request: Request, rfile: Any, wfile: Any, sock: socket.socket) -> None:
        self.request, self.rfile, self.wfile, self.sock = request, rfile, wfile, sock

    def _head(self, status: int, headers: dict[str, str]) -> None:
        reason = {101: "UPGRADED", 200: "OK", 201: "Created", 204: "No Content"}.get(status, "Error")
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.wfile.flush()

    def send_json(self, status: int, document: Any) -> None:
        body = b"" if document is None else json.dumps(document).encode()
        if status == 204:
            self._head(204, {})
            return
        self._head(status, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        self.wfile.write(body)
        self.wfile.flush()

    def error(self, status: int, message: str) -> None:
        self.send_json(status, {"message": message})

    def start_chunked(self, content_type: str = "application/json") -> None:
        self._head(200, {"Content-Type": content_type, "Transfer-Encoding": "chunked"})

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def upgrade(self, tty: bool) -> None:
        kind = "raw-stream" if tty else "multiplexed-stream"
        self._head(101, {"Content-Type": f"application/vnd.docker.{kind}", "Connection": "Upgrade", "Upgrade": "tcp"})


def frame(stream: int, payload: bytes) -> bytes:
    """Docker's 8-byte header plus payload."""
    return struct.pack(">BxxxL", stream, len(payload)) + payload


@dataclass
class FakeContainer:
    """A container the fake engine 'runs': it prints ``output`` (list of (stream, bytes)),
    echoes its stdin to stdout when attached with stdin, and exits with ``exit_code``."""

    id: str
    name: str
    body: dict[str, Any]
    output: list[tuple[int, bytes]] = field(default_factory=list)
    exit_code: int = 0
    runs_until_killed: bool = False
    started: threading.Event = field(default_factory=threading.Event)
    killed: threading.Event = field(default_factory=threading.Event)
    exited: threading.Event = field(default_factory=threading.Event)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class FakeDaemon:
    """Routes ``(METHOD, regex)`` to handlers; unknown routes answer 404 like a real daemon."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests: list[Request] = []
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.images = {"busybox:latest"}
        self.containers: dict[str, FakeContainer] = {}
        #: what the next created container prints and returns
        self.next_output: list[tuple[int, bytes]] = []
        self.next_exit_code = 0
        self.next_runs_until_killed = False
        self.start_error: tuple[int, str] | None = None
        self._lock = threading.Lock()
        self._install_engine()
        daemon = self

        class RequestHandler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                daemon._handle(self.rfile, self.wfile, self.request)

        self._server = _Server(path, RequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self) -> FakeDaemon:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for container in self.containers.values():
            container.started.set()
            container.killed.set()
            container.exited.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.insert(0, (method, re.compile(pattern + "$"), handler))
            return handler

        return register

    def calls(self) -> list[str]:
        """``METHOD /path`` of every request so far, in arrival order."""
        return [f"{r.method} {r.path}" for r in self.requests]

    def find(self, method: str, path_pattern: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(path_pattern, r.path)]

    # --- HTTP ---------------------------------------------------------------------------

    def _handle(self, rfile: Any, wfile: Any, sock: socket.socket) -> None:
        line = rfile.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            return
        method, target, _ = line.split(" ", 2)
        headers = {}
        while header := rfile.readline().decode("latin-1").rstrip("\r\n"):
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if "chunked" in headers.get("transfer-encoding", ""):
            while (size := int(rfile.readline().strip(), 16)) > 0:
                body += rfile.read(size)
                rfile.readline()
            rfile.readline()
        elif headers.get("content-length"):
            body = rfile.read(int(headers["content-length"]))
        url = urlsplit(target)
        match = re.match(r"^/v([\d.]+)(/.*)$", url.path)
        request = Request(method, match.group(2) if match else url.path, dict(parse_qsl(url.query)), headers, body,
                          match.group(1) if match else "")  # fmt: skip
        with self._lock:
            self.requests.append(request)
        exchange = Exchange(request, rfile, wfile, sock)
        for route_method, pattern, handler in self.routes:
            if route_method == method and pattern.match(request.path):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    handler(exchange)
                return
        exchange.error(404, "page not found")

    # --- a tiny engine ------------------------------------------------------------------

    def container(self, ref: str) -> FakeContainer | None:
        for container in self.containers.values():
            if ref in (container.id, container.name) or (len(ref) >= 3 and container.id.startswith(ref)):
                return container
        return None

    def _install_engine(self) -> None:
        @self.route("POST", "/containers/create")
        def create(ex: Exchange) -> None:
            body = ex.request.json()
            image = body["Image"] if ":" in body["Image"] else body["Image"] + ":latest"
            if image not in self.images:
                return ex.error(404, f"No such image: {image}")
            name = ex.request.query.get("name") or f"fake_{len(self.containers)}"
            cid = f"{len(self.containers) + 1:02d}" + "ab" * 31
            self.containers[cid] = FakeContainer(cid, name, body, list(self.next_output), self.next_exit_code,
                                                 self.next_runs_until_killed)  # fmt: skip
            ex.send_json(201, {"Id": cid, "Warnings": []})

        @self.route("POST", "/images/create")
        def pull(ex: Exchange) -> None:
            name = ex.request.query.get("fromImage", "")
            ex.error(404, f"pull access denied for {name}, repository does not exist or may require 'docker login'")

        @self.route("POST", "/containers/([^/]+)/attach")
        def attach(ex: Exchange) -> None:
            container = self.container(ex.request.path.split("/")[2])
            if container is None:
                return ex.error(404, "No such container")
            tty = bool(container.body.get("Tty"))
            ex.upgrade(tty)
            container.started.wait(10)
            if ex.request.query.get("stdin") == "1":
                # Echo stdin until the client half-closes (or, on a TTY, sends Ctrl-D).
                while data := ex.sock.recv(65536):
                    ex.wfile.write(data.replace(b"\x04", b"") if tty else frame(1, data))
                    ex.wfile.flush()
                    if tty and b"\x04" in data:
                        break
            for stream, data in container.output:
                ex.wfile.write(data if tty else frame(stream, data))
                ex.wfile.flush()
            if container.runs_until_killed:
                container.killed.wait(10)
            container.exited.set()

        @self.route("POST", "/containers/([^/]+)/wait")
        def wait(ex: Exchange) -> None:
            container = self.container(ex.request.path.split("/")[2])
            if container is None:
                return ex.error(404, "No such container")
            ex.start_chunked()  # the header first: the wait is registered
            container.exited.wait(10)
            ex.chunk(json.dumps({"StatusCode": container.exit_code, "Error": None}).encode())
            ex.end_chunks()

        @self.route("POST", "/containers/([^/]+)/start")
        def start(ex: Exchange) -> None:
            container = self.container(ex.request.path.split("/")[2])
            if container is None:
                return ex.error(404, "No such container")
            if self.start_error:
                return ex.error(*self.start_error)
            container.started.set()
            if not container.body.get("AttachStdout"):
                container.exited.set()
            ex.send_json(204, None)

        @self.route("POST", "/containers/([^/]+)/kill")
        def kill(ex: Exchange) -> None:
            container = self.container(ex.request.path.split("/")[2])
            if container is None:
                return ex.error(404, "No such container")
            number = getattr(signal, ex.request.query.get("signal", "SIGKILL"))
            container.exit_code = 128 + number
            container.killed.set()
            ex.send_json(204, None)

        @self.route("POST", "/containers/([^/]+)/resize")
        def resize(ex: Exchange) -> None:
            ex.send_json(200, None)
