"""A local control socket of a Raft member: status, and store requests for tools and tests.

A unix socket (mode 0600, so only root and the daemon's user reach it) speaking JSON lines:
each request ``{"op": ...}`` gets one response line, ``{"ok": ...}`` or
``{"error": "<ErrorClass>", "message": ...}``. Ops: ``status``; ``commit`` (``ops`` in the
log's own JSON form), ``get``, ``list`` and ``revision`` on the replicated store.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import trio

from shoal.errors import InvalidArgument, ShoalError
from shoal.store import StoredObject

from .driver import RaftDriver, quorum_held
from .objects import op_from_json
from .store import RaftStore
from .transport import StartedWith

#: Longest request line accepted.
MAX_LINE = 8 << 20


def status_report(driver: RaftDriver, cluster_id: str) -> dict[str, Any]:
    """Members, leader, term, commit index and whether quorum is held, as JSON-ready data."""
    st = driver.status()
    connected = driver.peers.connected
    addresses = driver.addresses
    members = []
    for node_id in sorted({*st.voters, *st.learners, *addresses}):
        members.append({
            "id": node_id,
            "address": addresses.get(node_id, ""),
            "role": "learner" if node_id in st.learners else "voter" if node_id in st.voters else "none",
            "self": node_id == st.id,
            "connected": node_id == st.id or node_id in connected,
            "leader": node_id == st.lead,
            "match": st.progress[node_id][0] if node_id in st.progress else None,
        })  # fmt: skip
    return {
        "cluster": cluster_id,
        "id": st.id,
        "state": st.role.value,
        "leader": st.lead,
        "term": st.term,
        "commit": st.commit,
        "applied": driver.applied,
        "last_index": st.last_index,
        "quorum": quorum_held(st, connected),
        "members": members,
    }


def _object(o: StoredObject | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {"kind": o.kind, "id": o.id, "version": o.version, "data": o.data, "labels": o.labels, "created": o.created}


async def _answer(request: dict[str, Any], store: RaftStore, driver: RaftDriver, cluster_id: str) -> Any:
    op = request.get("op")
    if op == "status":
        await trio.lowlevel.checkpoint()  # every answer yields once: a client cannot hog the loop
        return status_report(driver, cluster_id)
    if op == "commit":
        return [_object(o) for o in await store.commit([op_from_json(raw) for raw in request["ops"]])]
    if op == "get":
        return _object(await store.get(request["kind"], request["id"]))
    if op == "list":
        return [_object(o) for o in await store.list(request["kind"], request.get("labels"))]
    if op == "revision":
        return await store.revision()
    await trio.lowlevel.checkpoint()
    raise InvalidArgument(f"unknown control op {op!r}")


class _Connection:
    """A client's connection, read and written with the socket's own non-blocking calls.

    ``trio.SocketStream.send_all`` yields to the scheduler after every send; an answer here is
    written at once, and the task waits only when the socket asks it to.
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self.sock = socket.socket(fileno=stream.socket.detach())
        self.sock.setblocking(False)

    async def receive(self) -> bytes:
        while True:
            try:
                return self.sock.recv(65536)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.sock)

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.sock)

    def close(self) -> None:
        trio.lowlevel.notify_closing(self.sock)
        self.sock.close()


async def serve_control(path: Path, store: RaftStore, driver: RaftDriver, cluster_id: str,
                        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
    """Serve the control socket at ``path`` until cancelled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(128)
    listener = trio.SocketListener(sock)

    async def handle(stream: trio.SocketStream) -> None:
        connection = _Connection(stream)
        try:
            await serve_client(connection)
        except OSError:
            pass  # the client went away (a timeout on its side): its answer has nowhere to go
        finally:
            connection.close()

    async def serve_client(connection: _Connection) -> None:
        buffer = bytearray()
        while True:
            while b"\n" not in buffer:
                data = await connection.receive()
                if not data or len(buffer) > MAX_LINE:
                    return
                buffer += data
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer = bytearray(rest)
            try:
                response = {"ok": await _answer(json.loads(line), store, driver, cluster_id)}
            except (ShoalError, KeyError, ValueError, TypeError) as exc:
                response = {"error": type(exc).__name__, "message": str(exc)}
                await trio.lowlevel.checkpoint()  # a malformed request may not have yielded
            except trio.ClosedResourceError as exc:
                response = {"error": "Unavailable", "message": str(exc) or "the raft node is stopping"}
            await connection.send(json.dumps(response).encode() + b"\n")

    try:
        await trio.serve_listeners(handle, [listener], task_status=StartedWith(task_status, None))  # type: ignore[arg-type]
    finally:
        path.unlink(missing_ok=True)


class ControlError(Exception):
    """An error answer from a control socket; ``kind`` is the error class name (``NoQuorum``...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class ControlClient:
    """A blocking client of one control socket (for the CLI, tests and benchmarks)."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(os.fspath(path))
        self.file = self.sock.makefile("rb")

    def call(self, request: dict[str, Any]) -> Any:
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        line = self.file.readline()
        if not line:
            raise ConnectionError("the control socket closed the connection")
        response = json.loads(line)
        if "error" in response:
            raise ControlError(response["error"], response["message"])
        return response["ok"]

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
