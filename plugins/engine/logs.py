"""The json-file log driver: one JSON object per line, rotated by size, read with filters.

Each line is Docker's format, ``{"log": "hi\\n", "stream": "stdout", "time": "...Z"}``, in
``<dir>/<id>-json.log``; rotation renames it to ``.1``, ``.2``... up to ``max_file`` files.
A follower keeps its file open across a rotation, drains it, then moves to the new file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import trio

#: Docker splits lines longer than this into several log entries.
MAX_LINE = 16 * 1024


def rfc3339_nano(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def parse_rfc3339_nano(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 UTC time with 'Z' (as we write it)."""
    base, _, frac = text.rstrip("Z").partition(".")
    seconds = time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return int(seconds) * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])


@dataclass(frozen=True)
class LogEntry:
    stream: int  # 1 stdout, 2 stderr
    data: bytes
    time_ns: int


class LineSplitter:
    """Turns a stream's chunks into log lines (newline-terminated, or cut at MAX_LINE)."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._partial + chunk
        lines = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            lines.append(data[start : end + 1])
            start = end + 1
        rest = data[start:]
        while len(rest) >= MAX_LINE:
            lines.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._partial = rest
        return lines

    def flush(self) -> list[bytes]:
        rest, self._partial = self._partial, b""
        return [rest] if rest else []


class JsonFileLog:
    """Writes a container's log; readers use ``read``. One writer per container."""

    def __init__(self, path: Path, max_size: int = 0, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size  # 0: no rotation
        self.max_file = max(1, max_file)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._written = trio.Event()
        self.closed = False

    def write(self, stream: int, line: bytes, time_ns: int | None = None) -> None:
        record = {
            "log": line.decode("utf-8", "replace"),
            "stream": "stdout" if stream == 1 else "stderr",
            "time": rfc3339_nano(time_ns if time_ns is not None else time.time_ns()),
        }
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        if self.max_size and self._size and self._size + len(data) > self.max_size:
            self._rotate()
        os.write(self._fd, data)
        self._size += len(data)
        self._wake()

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_file == 1:
            os.truncate(self.path, 0)  # a single file: start it over
        else:
            for n in range(self.max_file - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                newer = self.path.with_name(f"{self.path.name}.{n - 1}") if n > 1 else self.path
                if newer.exists():
                    newer.replace(older)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = 0

    def _wake(self) -> None:
        self._written.set()
        self._written = trio.Event()

    def close(self) -> None:
        """The container stopped: no more lines; followers finish."""
        if not self.closed:
            self.closed = True
            os.close(self._fd)
            self._wake()

    def next_write(self) -> trio.Event:
        """An event set at the next write (or at close)."""
        return self._written


def log_files(path: Path) -> list[Path]:
    """The current log and its rotated files, oldest first."""
    rotated = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    return [p for p in rotated if p.suffix[1:].isdigit()] + ([path] if path.exists() else [])


def _decode(line: bytes) -> LogEntry | None:
    try:
        record = json.loads(line)
        return LogEntry(1 if record["stream"] == "stdout" else 2, record["log"].encode(), parse_rfc3339_nano(record["time"]))
    except (ValueError, KeyError):
        return None  # a torn last line while the writer is mid-write, or foreign content


def _wanted(entry: LogEntry, streams: set[int], since_ns: int, until_ns: int) -> bool:
    return entry.stream in streams and entry.time_ns >= since_ns and (not until_ns or entry.time_ns < until_ns)


def read_entries(path: Path, streams: set[int], since_ns: int = 0, until_ns: int = 0, tail: int | None = None) -> list[LogEntry]:
    """Every kept entry matching the filters, oldest first (the last ``tail`` if given)."""
    entries: list[LogEntry] = []
    for file in log_files(path):
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            continue
        for line in data.splitlines():
            entry = _decode(line)
            if entry is not None and _wanted(entry, streams, since_ns, until_ns):
                entries.append(entry)
    if tail is not None:
        entries = entries[-tail:] if tail > 0 else []
    return entries


async def follow(log: JsonFileLog, streams: set[int], since_ns: int = 0, until_ns: int = 0,
                 tail: int | None = None) -> AsyncIterator[LogEntry]:  # fmt: skip
    """Kept entries, then new ones as they are written, until the log is closed."""
    fd = os.open(log.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # Everything up to the current end of the live file is read as history.
        offset = os.fstat(fd).st_size
        for entry in read_entries(log.path, streams, since_ns, until_ns, tail):
            yield entry
        pending = b""
        while True:
            waiter = None if log.closed else log.next_write()
            chunk = os.pread(fd, 1 << 16, offset)
            while chunk:
                offset += len(chunk)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    entry = _decode(line)
                    if entry is not None and _wanted(entry, streams, since_ns, until_ns):
                        yield entry
                chunk = os.pread(fd, 1 << 16, offset)
            if _rotated(fd, log.path, offset):
                os.close(fd)
                fd = os.open(log.path, os.O_RDONLY | os.O_CLOEXEC)
                offset = 0
                pending = b""
                continue
            if waiter is None:
                return
            await waiter.wait()
    finally:
        os.close(fd)


def _rotated(fd: int, path: Path, offset: int) -> bool:
    """Whether the writer moved on: a new file at ``path``, or ours truncated below ``offset``."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (current.st_ino, current.st_dev) != (mine.st_ino, mine.st_dev) or mine.st_size < offset
