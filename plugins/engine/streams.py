"""A container's output fan-out and the attachments that read it and write its stdin.

Output is read from the container's pipes (or pty) by pump tasks, written to the log and
handed to every attachment. Handing over waits for a slow attachment (back-pressure, as
Docker applies it), so an attached client sees every byte in order.
"""

from __future__ import annotations

import errno
import os

import trio

from shoal.containers import STDOUT

from .logs import JsonFileLog, LineSplitter

ATTACH_BUFFER = 64


class OutputHub:
    """Fans a container's output out to the attachments connected at that moment."""

    def __init__(self) -> None:
        self._attachments: set[EngineAttachment] = set()

    def connect(self, attachment: EngineAttachment) -> None:
        self._attachments.add(attachment)

    def disconnect(self, attachment: EngineAttachment) -> None:
        self._attachments.discard(attachment)

    async def publish(self, stream: int, data: bytes) -> None:
        for attachment in list(self._attachments):
            if stream in attachment.streams:
                await attachment.deliver(stream, data)

    def end(self) -> None:
        """The process closed its output: every attachment reads its end."""
        for attachment in list(self._attachments):
            attachment.finish()
        self._attachments.clear()


class StdinPipe:
    """The write side of a process's standard input (a pipe or the pty master)."""

    def __init__(self, fd: int, owned: bool = True) -> None:
        self._stream = trio.lowlevel.FdStream(fd if owned else os.dup(fd))
        self._lock = trio.Lock()
        self.closed = False

    async def write(self, data: bytes) -> None:
        async with self._lock:
            if self.closed:
                raise BrokenPipeError(errno.EPIPE, "stdin is closed")
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise BrokenPipeError(errno.EPIPE, "the process no longer reads its input") from exc

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._stream.aclose()


class EngineAttachment:
    """One client's view of a process's streams (``shoal.containers.Attachment``)."""

    def __init__(self, hub: OutputHub, streams: set[int], tty: bool, stdin: StdinPipe | None,
                 stdin_ready: trio.Event | None = None) -> None:  # fmt: skip
        self.tty = tty
        self.streams = streams
        self._hub = hub
        self._stdin = stdin
        self._stdin_ready = stdin_ready
        self._send, self._receive = trio.open_memory_channel[tuple[int, bytes]](ATTACH_BUFFER)
        hub.connect(self)

    def bind_stdin(self, stdin: StdinPipe | None) -> None:
        self._stdin = stdin

    async def deliver(self, stream: int, data: bytes) -> None:
        try:
            await self._send.send((STDOUT if self.tty else stream, data))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._hub.disconnect(self)

    def finish(self) -> None:
        self._send.close()

    async def read(self) -> tuple[int, bytes] | None:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return None

    async def write(self, data: bytes) -> None:
        if self._stdin is None and self._stdin_ready is not None:
            await self._stdin_ready.wait()
        if self._stdin is None:
            raise BrokenPipeError(errno.EPIPE, "the process has no open standard input")
        await self._stdin.write(data)

    async def close_stdin(self) -> None:
        if self._stdin is None and self._stdin_ready is not None:
            await self._stdin_ready.wait()
        if self._stdin is not None:
            await self._stdin.close()

    async def aclose(self) -> None:
        self._hub.disconnect(self)
        self._receive.close()


async def pump(fd: int, stream: int, hub: OutputHub, log: JsonFileLog | None) -> None:
    """Copy one output fd to the hub and the log until end of file (EIO on a closed pty)."""
    splitter = LineSplitter()
    source = trio.lowlevel.FdStream(fd)
    try:
        while True:
            try:
                data = await source.receive_some(65536)
            except trio.BrokenResourceError as exc:
                cause = exc.__cause__
                if not (isinstance(cause, OSError) and cause.errno == errno.EIO):
                    raise
                data = b""  # EIO: a pty whose last slave side closed, its end of file
            if not data:
                break
            await hub.publish(stream, data)
            if log is not None and not log.closed:
                for line in splitter.feed(data):
                    log.write(stream, line)
        if log is not None and not log.closed:
            for line in splitter.flush():
                log.write(stream, line)
    finally:
        await source.aclose()
