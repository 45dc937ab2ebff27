"""Moving bytes between the local stdio and a hijacked attach/exec connection, and writing a
(possibly multiplexed) output stream to the local stdout and stderr."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable
from typing import BinaryIO

from .client import Hijacked
from .frames import STDERR, STDOUT, SYSERR, FrameDecoder


class Output:
    """Writes each stream to its local counterpart: stdout to stdout, stderr to stderr."""

    def __init__(self, stdout: BinaryIO | None = None, stderr: BinaryIO | None = None) -> None:
        self.stdout = stdout or sys.stdout.buffer
        self.stderr = stderr or sys.stderr.buffer

    def write(self, stream: int, data: bytes) -> None:
        """Write ``data`` of ``stream`` (STDOUT, STDERR or SYSERR) and flush it at once."""
        target = self.stdout if stream == STDOUT else self.stderr
        target.write(data)
        target.flush()


def copy_output(chunks: Iterable[bytes], multiplexed: bool, output: Output) -> None:
    """Write a stream of output chunks: demultiplexed when framed, else all to stdout."""
    if not multiplexed:
        for chunk in chunks:
            output.write(STDOUT, chunk)
        return
    decoder = FrameDecoder()
    for chunk in chunks:
        for stream, payload in decoder.feed(chunk):
            output.write(STDERR if stream in (STDERR, SYSERR) else STDOUT, payload)


def _hijacked_chunks(connection: Hijacked) -> Iterable[bytes]:
    while data := connection.recv():
        yield data


def _forward_stdin(connection: Hijacked, fd: int) -> None:
    try:
        while data := os.read(fd, 32768):
            connection.send(data)
    except OSError:
        return  # the connection is gone: output handling reports what matters
    connection.close_write()


def pump(connection: Hijacked, *, tty: bool, stdin_fd: int | None, output: Output) -> None:
    """Forward local stdin (when ``stdin_fd`` is given) and write output until the daemon ends
    the stream. At the end of local stdin the write side is half-closed, so the process sees
    EOF while its remaining output still arrives."""
    if stdin_fd is not None:
        threading.Thread(target=_forward_stdin, args=(connection, stdin_fd), daemon=True).start()
    multiplexed = connection.multiplexed
    copy_output(_hijacked_chunks(connection), (not tty) if multiplexed is None else multiplexed, output)
