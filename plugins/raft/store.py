"""The ``raft`` store provider: the versioned object store replicated through a Raft log.

Writes become log entries, committed by a quorum and applied by every node to its
``ObjectState``; a follower forwards them to the leader. Reads are linearizable: each first
confirms, through ReadIndex, that this node has applied everything committed before the read
began. Watches stream from the node's own applied history.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import trio

from shoal.errors import ShoalError
from shoal.store import Change, Op, StoredObject, StoreBase

from .driver import RaftDriver
from .objects import ObjectState, encode_command


class RaftStore(StoreBase):
    """A ``Store`` over a ``RaftDriver``; it is also the driver's state machine."""

    def __init__(self, history: int | None = None) -> None:
        self.state = ObjectState(history)
        self.driver: RaftDriver | None = None
        self._changed = trio.Event()
        #: Whether a watcher holds ``_changed``: only then does an apply need a new event.
        self._changed_taken = False
        self._closed = False
        #: Request ids: a random prefix per store instance (unique across members and restarts),
        #: then a counter, so a commit needs no random bytes of its own.
        self._rid_prefix = os.urandom(8).hex()
        self._rids = itertools.count(1)

    def attach(self, driver: RaftDriver) -> None:
        self.driver = driver

    # ------------------------------------------------------------------ state machine

    def apply(self, data: bytes) -> Any:
        result = self.state.apply(data)
        self._notify()
        return result

    def snapshot(self) -> Iterator[bytes]:
        return self.state.snapshot()

    def restore(self, data: bytes) -> None:
        self.state.restore(data)
        self._notify()

    def _notify(self) -> None:
        if self._changed_taken:
            self._changed.set()
            self._changed = trio.Event()
            self._changed_taken = False

    # ------------------------------------------------------------------ the Store slot

    def _driver(self) -> RaftDriver:
        if self._closed or self.driver is None:
            raise trio.ClosedResourceError("the raft store is closed")
        return self.driver

    async def commit(self, ops: Sequence[Op]) -> list[StoredObject | None]:
        """Apply operations atomically once a quorum has stored them; see ``shoal.slots.Store.commit``."""
        ops = list(ops)
        data = encode_command(ops, f"{self._rid_prefix}{next(self._rids):x}")
        if not ops:
            await trio.lowlevel.checkpoint()
            return []
        result = await self._driver().propose(data)
        if isinstance(result, ShoalError):
            raise result
        return result  # type: ignore[no-any-return]

    async def get(self, kind: str, id: str) -> StoredObject:
        await self._driver().read_barrier()
        return self.state.get(kind, id)

    async def list(self, kind: str, labels: Mapping[str, str] | None = None) -> list[StoredObject]:
        await self._driver().read_barrier()
        return self.state.list(kind, labels)

    async def revision(self) -> int:
        await self._driver().read_barrier()
        return self.state.revision

    async def watch(self, since: int, kinds: Sequence[str] | None = None) -> AsyncIterator[Change]:
        """Stream changes after ``since`` as this node applies them; see ``shoal.slots.Store.watch``."""
        position = since
        while True:
            self._driver()
            changed = self._changed
            self._changed_taken = True
            changes = self.state.changes_after(position, kinds)
            position = max(position, self.state.revision)
            for change in changes:
                yield change
            if not changes:
                await changed.wait()

    def close(self) -> None:
        """Stop serving: watchers and later calls raise ``trio.ClosedResourceError``."""
        self._closed = True
        self._changed_taken = True
        self._notify()
