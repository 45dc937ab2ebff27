"""An in-memory ``Containers`` for testing the HTTP frontend.

Containers run tiny scripted programs as trio tasks instead of processes:
``["echo", words...]`` prints its words, ``["cat"]`` copies stdin to stdout until stdin
closes, ``["err", text, code]`` prints to stderr and exits with ``code``, ``["sleep"]`` runs
until stopped or killed.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from shoal.containers import STDERR, STDOUT
from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.events import EventBus

_ids = itertools.count(1)


def _new_id() -> str:
    return f"{next(_ids):04x}".ljust(64, "c")


@dataclass
class Run:
    """One running program: a container's main process or an exec."""

    argv: list[str]
    tty: bool
    stdin_send: trio.MemorySendChannel[bytes]
    stdin_recv: trio.MemoryReceiveChannel[bytes]
    listeners: list[trio.MemorySendChannel[tuple[int, bytes] | None]] = field(default_factory=list)
    exited: trio.Event = field(default_factory=trio.Event)
    exit_code: int | None = None
    killed: trio.Event = field(default_factory=trio.Event)
    started: bool = False
    resized: list[tuple[int, int]] = field(default_factory=list)


class FakeAttachment:
    """The ``Attachment`` of a fake run."""

    def __init__(self, run: Run, recv: trio.MemoryReceiveChannel[tuple[int, bytes] | None], stdin: bool) -> None:
        self.tty = run.tty
        self._run = run
        self._recv = recv
        self._stdin = stdin
        self.closed = False

    async def read(self) -> tuple[int, bytes] | None:
        try:
            return await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return None

    async def write(self, data: bytes) -> None:
        try:
            await self._run.stdin_send.send(data)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise BrokenPipeError("stdin is closed") from None

    async def close_stdin(self) -> None:
        await self._run.stdin_send.aclose()

    async def aclose(self) -> None:
        self.closed = True
        self._recv.close()


@dataclass
class FakeContainer:
    id: str
    name: str
    body: dict[str, Any]
    created: float = field(default_factory=time.time)
    status: str = "created"
    run: Run | None = None
    log: list[tuple[int, bytes, float]] = field(default_factory=list)
    exit_code: int = 0
    exits: int = 0
    changed: trio.Event = field(default_factory=trio.Event)


class FakeContainers:
    """Implements the ``Containers`` protocol in memory; runs programs in ``nursery``."""

    def __init__(self, nursery: trio.Nursery, events: EventBus) -> None:
        self.nursery = nursery
        self.events = events
        self.containers: dict[str, FakeContainer] = {}
        self.execs: dict[str, dict[str, Any]] = {}
        self.attachments: list[FakeAttachment] = []

    # ---------------------------------------------------------------- helpers

    def _find(self, ref: str) -> FakeContainer:
        for c in self.containers.values():
            if ref in (c.id, c.name) or (len(ref) >= 3 and c.id.startswith(ref)):
                return c
        raise NotFound(f"No such container: {ref}")

    def _changed(self, c: FakeContainer) -> None:
        c.changed.set()
        c.changed = trio.Event()

    def _emit(self, c: FakeContainer, action: str, **extra: str) -> None:
        self.events.emit("container", action, c.id, name=c.name, image=c.body.get("Image", ""), **extra)

    @staticmethod
    def _new_run(argv: list[str], tty: bool) -> Run:
        send, recv = trio.open_memory_channel[bytes](100)
        return Run(argv, tty, send, recv)

    def _launch(self, run: Run, log: list | None) -> None:
        argv, tty, recv = run.argv, run.tty, run.stdin_recv
        run.started = True

        async def out(stream: int, data: bytes) -> None:
            stream = STDOUT if tty else stream
            if log is not None:
                log.append((stream, data, time.time()))
            for listener in list(run.listeners):
                try:
                    listener.send_nowait((stream, data))
                except (trio.ClosedResourceError, trio.BrokenResourceError, trio.WouldBlock):
                    run.listeners.remove(listener)

        async def program() -> int:
            name, args = argv[0], argv[1:]
            # Like a real process start, output comes a moment later: the docker SDK reads
            # the response head through a buffer and would miss bytes sent right behind it.
            await trio.sleep(0.02)
            if name == "echo":
                await out(STDOUT, (" ".join(args) + "\n").encode())
                return 0
            if name == "err":
                await out(STDERR, (args[0] + "\n").encode())
                return int(args[1])
            if name == "cat":
                async for data in recv:
                    await out(STDOUT, data)
                return 0
            if name == "sleep":
                await trio.sleep_forever()
            raise AssertionError(f"unknown fake program {name}")

        async def main() -> None:
            with trio.CancelScope() as scope:

                async def killer() -> None:
                    await run.killed.wait()
                    scope.cancel()

                async with trio.open_nursery() as n:
                    n.start_soon(killer)
                    run.exit_code = await program()
                    n.cancel_scope.cancel()
            if run.exit_code is None:
                run.exit_code = 137
            for listener in run.listeners:
                listener.close()
            run.exited.set()

        self.nursery.start_soon(main)

    async def _watch_exit(self, c: FakeContainer, run: Run) -> None:
        await run.exited.wait()
        c.status, c.exit_code = "exited", run.exit_code or 0
        c.exits += 1
        self._emit(c, "die", exitCode=str(c.exit_code))
        self._changed(c)

    # ---------------------------------------------------------------- protocol

    async def create(self, body: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
        if not body.get("Image"):
            raise InvalidArgument("Image is required")
        if body["Image"] == "missing":
            raise NotFound("No such image: missing")
        cid = _new_id()
        name = name or f"fake_{cid[:6]}"
        if any(c.name == name for c in self.containers.values()):
            raise Conflict(f'Conflict. The container name "/{name}" is already in use')
        c = FakeContainer(cid, name, dict(body))
        c.run = self._new_run(list(body.get("Cmd") or ["sleep"]), bool(body.get("Tty")))
        self.containers[cid] = c
        self._emit(c, "create")
        return {"Id": cid, "Warnings": []}

    async def start(self, id: str) -> None:
        c = self._find(id)
        if c.status == "running":
            raise Conflict(f"container {id} is already running")
        if c.run is None or c.run.started:
            c.run = self._new_run(list(c.body.get("Cmd") or ["sleep"]), bool(c.body.get("Tty")))
        self._launch(c.run, c.log)
        c.status = "running"
        self._emit(c, "start")
        self._changed(c)
        self.nursery.start_soon(self._watch_exit, c, c.run)
        await trio.lowlevel.checkpoint()

    async def stop(self, id: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self._find(id)
        if c.status != "running" or c.run is None:
            raise Conflict(f"container {id} is not running")
        c.run.killed.set()
        await c.run.exited.wait()
        await self._settled(c)

    async def _settled(self, c: FakeContainer) -> None:
        while c.status == "running":
            await c.changed.wait()

    async def kill(self, id: str, signal: str = "SIGKILL") -> None:
        c = self._find(id)
        if signal not in ("SIGKILL", "KILL", "9", "SIGTERM", "TERM", "15"):
            raise InvalidArgument(f"invalid signal: {signal}")
        if c.status != "running" or c.run is None:
            raise Conflict(f"Container {id} is not running")
        c.run.killed.set()
        await self._settled(c)

    async def restart(self, id: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self._find(id)
        if c.status == "running":
            await self.stop(id, timeout, signal)
        await self.start(id)

    async def pause(self, id: str) -> None:
        c = self._find(id)
        if c.status != "running":
            raise Conflict(f"Container {id} is not running")
        c.status = "paused"

    async def unpause(self, id: str) -> None:
        c = self._find(id)
        if c.status != "paused":
            raise Conflict(f"Container {id} is not paused")
        c.status = "running"

    async def wait(self, id: str, condition: str = "not-running") -> dict[str, Any]:
        c = self._find(id)
        if condition == "removed":
            while c.id in self.containers:
                await c.changed.wait()
        elif condition == "next-exit":
            exits = c.exits
            while c.exits == exits:
                await c.changed.wait()
        else:
            await self._settled(c)
        return {"StatusCode": c.exit_code}

    async def remove(self, id: str, force: bool = False, volumes: bool = False) -> None:
        c = self._find(id)
        if c.status in ("running", "paused"):
            if not force:
                raise Conflict(f"cannot remove container {c.name}: container is running: stop the container before removing or force remove")
            await self.kill(c.id)
        del self.containers[c.id]
        self._emit(c, "destroy")
        self._changed(c)

    async def rename(self, id: str, name: str) -> None:
        c = self._find(id)
        if any(o.name == name for o in self.containers.values()):
            raise Conflict(f"name {name} is in use")
        c.name = name

    async def inspect(self, id: str) -> dict[str, Any]:
        c = self._find(id)
        return {
            "Id": c.id,
            "Name": "/" + c.name,
            "Config": {"Image": c.body["Image"], "Cmd": c.body.get("Cmd"), "Tty": bool(c.body.get("Tty"))},
            "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {}}},
            "State": {"Status": c.status, "Running": c.status in ("running", "paused"),
                      "Paused": c.status == "paused", "ExitCode": c.exit_code},
        }  # fmt: skip

    async def list(self, all: bool = False, filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        out = []
        for c in sorted(self.containers.values(), key=lambda c: -c.created):
            if not all and c.status not in ("running", "paused"):
                continue
            if filters and "name" in filters and not any(n in c.name for n in filters["name"]):
                continue
            out.append({"Id": c.id, "Names": ["/" + c.name], "Image": c.body["Image"], "ImageID": "sha256:" + "a" * 64,
                        "Command": " ".join(c.body.get("Cmd") or []), "Created": int(c.created), "State": c.status,
                        "Status": c.status, "Ports": [], "Labels": {}, "Mounts": []})  # fmt: skip
        return out

    async def logs(self, id: str, *, stdout: bool = True, stderr: bool = True, follow: bool = False,
                   since: float = 0, until: float = 0, timestamps: bool = False,
                   tail: int | None = None) -> AsyncIterator[tuple[int, bytes]]:  # fmt: skip
        c = self._find(id)
        wanted = {STDOUT} if stdout else set()
        wanted |= {STDERR} if stderr else set()
        lines = c.log if tail is None else c.log[len(c.log) - tail :] if tail else []
        start = len(c.log) - len(lines)
        sent = start
        while True:
            while sent < len(c.log):
                stream, data, when = c.log[sent]
                sent += 1
                if stream in wanted and when >= since and (not until or when < until):
                    yield stream, (b"2024-01-01T00:00:00.000000000Z " + data if timestamps else data)
            if not follow or c.status != "running":
                return
            await trio.sleep(0.01)

    async def attach(self, id: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool = False) -> FakeAttachment:
        c = self._find(id)
        assert c.run is not None
        if c.run.started and c.status != "running":
            raise Conflict(f"container {id} is not running")
        send, recv = trio.open_memory_channel[tuple[int, bytes] | None](100)
        c.run.listeners.append(send)
        attachment = FakeAttachment(c.run, recv, stdin)
        self.attachments.append(attachment)
        return attachment

    async def resize(self, id: str, height: int, width: int) -> None:
        c = self._find(id)
        if c.run is None:
            raise Conflict(f"container {id} is not running")
        c.run.resized.append((height, width))

    async def top(self, id: str, ps_args: str = "-ef") -> dict[str, Any]:
        c = self._find(id)
        return {"Titles": ["PID", "CMD"], "Processes": [["1", " ".join(c.body.get("Cmd") or [])]]}

    async def stats(self, id: str) -> dict[str, Any]:
        c = self._find(id)
        self.stats_calls = getattr(self, "stats_calls", 0) + 1
        return {"id": c.id, "name": "/" + c.name, "read": f"2024-01-01T00:00:0{self.stats_calls % 10}Z",
                "cpu_stats": {"cpu_usage": {"total_usage": 1000 * self.stats_calls}, "system_cpu_usage": 5000 * self.stats_calls},
                "memory_stats": {"usage": 4096}}  # fmt: skip

    async def exec_create(self, id: str, body: Mapping[str, Any]) -> str:
        c = self._find(id)
        if c.status != "running":
            raise Conflict(f"container {id} is not running")
        if not body.get("Cmd"):
            raise InvalidArgument("No exec command specified")
        exec_id = "e" + _new_id()[1:]
        self.execs[exec_id] = {"ID": exec_id, "ContainerID": c.id, "Running": False, "ExitCode": None,
                               "OpenStdin": bool(body.get("AttachStdin")), "ProcessConfig": {"tty": bool(body.get("Tty"))},
                               "body": dict(body), "run": None}  # fmt: skip
        return exec_id

    async def exec_start(self, exec_id: str, *, detach: bool = False, tty: bool | None = None) -> FakeAttachment | None:
        if exec_id not in self.execs:
            raise NotFound(f"No such exec instance: {exec_id}")
        record = self.execs[exec_id]
        tty = record["body"].get("Tty", False) if tty is None else tty
        run = self._new_run(list(record["body"]["Cmd"]), bool(tty))
        record["run"], record["Running"] = run, True
        attachment = None
        if not detach:
            send, recv = trio.open_memory_channel[tuple[int, bytes] | None](100)
            run.listeners.append(send)
            attachment = FakeAttachment(run, recv, record["OpenStdin"])
            self.attachments.append(attachment)
        self._launch(run, None)

        async def finish() -> None:
            await run.exited.wait()
            record["Running"], record["ExitCode"] = False, run.exit_code

        self.nursery.start_soon(finish)
        return attachment

    async def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        if exec_id not in self.execs:
            raise NotFound(f"No such exec instance: {exec_id}")
        return {k: v for k, v in self.execs[exec_id].items() if k not in ("body", "run")}

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        if exec_id not in self.execs:
            raise NotFound(f"No such exec instance: {exec_id}")
        run = self.execs[exec_id]["run"]
        if run is not None:
            run.resized.append((height, width))

    async def prune(self, filters: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        gone = [c.id for c in list(self.containers.values()) if c.status in ("created", "exited")]
        for cid in gone:
            await self.remove(cid)
        return {"ContainersDeleted": gone, "SpaceReclaimed": 0}


@dataclass
class Served:
    """A running frontend: its socket, the API state and the fake engine behind it."""

    socket: str
    api: Any
    engine: FakeContainers

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=self.socket), base_url="http://docker")
