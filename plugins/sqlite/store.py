"""The sqlite store provider: versioned objects in one SQLite file, with a watch stream.

One writer connection, used under a ``trio.Lock``, commits transactions; reads use a small pool
of their own connections (WAL lets them run beside a write). Blocking sqlite calls run in worker
threads. Watchers wake on an in-process event replaced at every commit, and poll the revision
counter while idle so that commits by another process on the same file reach them too.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Literal, TypeVar

import trio

from shoal.errors import InvalidArgument, NotFound
from shoal.store import Change, Compacted, Op, StoredObject, StoreBase

from . import database

T = TypeVar("T")

#: Revisions a watcher reads per query while it catches up.
WATCH_BATCH = 256

#: Reader connections kept open between reads; a burst may open more, closed after use.
IDLE_READERS = 8


class SqliteStore(StoreBase):
    """A ``Store`` provider backed by one SQLite file; open it with ``SqliteStore.open``."""

    def __init__(
        self,
        path: str,
        writer: sqlite3.Connection,
        *,
        history: int | None,
        synchronous: Literal["full", "normal"],
        busy_timeout: float,
        poll_interval: float,
        revision: int,
    ) -> None:
        self.path = path
        self.history = history
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._poll_interval = poll_interval
        self._writer = writer
        self._write_lock = trio.Lock()
        self._idle_readers: list[sqlite3.Connection] = []
        self._closed = False
        # The highest revision this process knows was committed, and the event the next
        # commit sets: a watcher takes the event before it reads, so it cannot miss a wake-up.
        self._known_revision = revision
        self._changed = trio.Event()
        self._polled_at = -math.inf

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        history: int | None = 10000,
        synchronous: Literal["full", "normal"] = "full",
        busy_timeout: float = 30.0,
        poll_interval: float = 0.25,
    ) -> SqliteStore:
        """Open (creating if needed) the store in the file at ``path``.

        Args:
            path: the database file; other processes may open it too.
            history: revisions of changes kept for ``watch``; None keeps all of them.
            synchronous: "full" syncs every commit to disk, "normal" only at checkpoints
                (a commit can then be lost to a power cut, never to a crash of the process).
            busy_timeout: seconds a statement waits for another process's lock.
            poll_interval: seconds between checks, while watchers are idle, for commits
                made by other processes.
        """
        if history is not None and history < 1:
            raise InvalidArgument(f"history: must be at least 1 revision, got {history}")
        if synchronous not in ("full", "normal"):
            raise InvalidArgument(f"synchronous: must be 'full' or 'normal', got {synchronous!r}")
        path = os.fspath(path)

        def open_writer() -> tuple[sqlite3.Connection, int]:
            conn = database.connect(path, synchronous, busy_timeout)
            try:
                database.initialise(conn)
                return conn, database.revision(conn)
            except BaseException:
                conn.close()
                raise

        writer, revision = await trio.to_thread.run_sync(open_writer)
        return cls(
            path,
            writer,
            history=history,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            poll_interval=poll_interval,
            revision=revision,
        )

    async def aclose(self) -> None:
        """Close the store; watchers then raise ``trio.ClosedResourceError``."""
        if self._closed:
            return
        self._closed = True
        self._notify()
        # Shielded: a cancelled close must still release the file (and its write lock).
        with trio.CancelScope(shield=True):
            async with self._write_lock:
                await trio.to_thread.run_sync(self._writer.close)
        readers, self._idle_readers = self._idle_readers, []
        for conn in readers:
            conn.close()

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------------- the Store slot

    async def commit(self, ops: Sequence[Op]) -> list[StoredObject | None]:
        """Apply operations atomically; see ``shoal.slots.Store.commit``."""
        ops = list(ops)
        for op in ops:
            database.validate_op(op)
        if not ops:
            return []
        async with self._write_lock:
            self._check_open()
            revision, results = await trio.to_thread.run_sync(database.commit, self._writer, ops, self.history)
        if revision > self._known_revision:
            self._known_revision = revision
            self._notify()
        return results

    async def get(self, kind: str, id: str) -> StoredObject:
        """Read one object; raises ``NotFound``."""
        obj = await self._read(database.get, kind, id)
        if obj is None:
            raise NotFound(f"{kind}/{id}: no such object")
        return obj

    async def list(self, kind: str, labels: Mapping[str, str] | None = None) -> list[StoredObject]:
        """List the objects of a kind carrying all ``labels``, ordered by id."""
        return await self._read(database.list_objects, kind, dict(labels or {}))

    async def revision(self) -> int:
        """The last committed revision, by this process or another one."""
        return await self._read(database.revision)

    async def watch(self, since: int, kinds: Sequence[str] | None = None) -> AsyncIterator[Change]:
        """Stream changes after ``since``: the recorded ones, then live ones, in order.

        Raises ``Compacted`` when changes after ``since`` are no longer kept, including when
        a slow watcher falls that far behind, and ``trio.ClosedResourceError`` once the store
        is closed.
        """
        if since < 0:
            raise InvalidArgument(f"since: must be a revision (>= 0), got {since}")
        wanted = tuple(kinds) if kinds is not None else None
        last = since
        while True:
            self._check_open()
            wake = self._changed
            batch = await self._read(database.read_changes, last, WATCH_BATCH, wanted)
            if batch.compacted > last:
                raise Compacted(
                    f"watch from revision {last}: changes up to revision {batch.compacted} are compacted"
                    f" (history keeps {self.history} revisions)"
                )
            for change in batch.changes:
                yield change
            last = max(last, batch.upto)
            if batch.revision <= last:
                await self._wait_for_commit(wake)

    # ----------------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the store is closed")

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_for_commit(self, wake: trio.Event) -> None:
        """Return once a commit may have happened here or elsewhere, or the store closed."""
        while True:
            with trio.move_on_after(self._poll_interval):
                await wake.wait()
                return
            await self._poll_other_writers()

    async def _poll_other_writers(self) -> None:
        # Shared by all idle watchers: at most one revision read per interval, and a newer
        # revision wakes every one of them.
        now = trio.current_time()
        if now - self._polled_at < self._poll_interval or self._closed:
            return
        self._polled_at = now
        revision = await self._read(database.revision)
        if revision > self._known_revision:
            self._known_revision = revision
            self._notify()

    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        """Run a read in a worker thread on a pooled reader connection."""
        self._check_open()
        if self._idle_readers:
            conn = self._idle_readers.pop()
        else:
            conn = await trio.to_thread.run_sync(
                database.connect, self.path, self._synchronous, self._busy_timeout
            )
        try:
            return await trio.to_thread.run_sync(fn, conn, *args)
        finally:
            if self._closed or len(self._idle_readers) >= IDLE_READERS:
                conn.close()
            else:
                self._idle_readers.append(conn)
