"""Pending ReadIndex requests on a leader, released once a quorum confirms its leadership."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReadRequest:
    #: The commit index when the read arrived: serving from it is linearizable once confirmed.
    index: int
    #: The node that asked (0: a local request) and the request's unique context.
    requester: int
    context: bytes
    acks: set[int] = field(default_factory=set)

class ReadOnly:
    """Reads in arrival order; a heartbeat round carrying a read's context confirms it and all before it."""

    def __init__(self) -> None:
        self._pending: dict[bytes, ReadRequest] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, index: int, requester: int, context: bytes) -> None:
        if context not in self._pending:
            self._pending[context] = ReadRequest(index, requester, context)

    def last_context(self) -> bytes:
        return next(reversed(self._pending)) if self._pending else b""

    def ack(self, context: bytes, node_id: int) -> set[int] | None:
        """Record a heartbeat reply; the set of nodes that confirmed this read so far, or None if unknown."""
        request = self._pending.get(context)
        if request is None:
            return None
        request.acks.add(node_id)
        return request.acks

    def release(self, context: bytes) -> list[ReadRequest]:
        """Remove and return every read up to and including ``context`` (earlier reads are confirmed too)."""
        released: list[ReadRequest] = []
        if context not in self._pending:
            return released
        while self._pending:
            key = next(iter(self._pending))
            released.append(self._pending.pop(key))
            if key == context:
                break
        return released

    def reset(self) -> None:
        self._pending.clear()
