"""The kernel-wide event stream: what happened to containers, images, networks, services.

Events have the shape of Docker's ``/events`` messages so the Engine API can serve them as
they are. Publishing never blocks: each subscriber has a bounded buffer, and a subscriber
that falls that far behind is told so (``EventsLagged``) instead of slowing the publisher.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from .errors import ShoalError

log = logging.getLogger(__name__)

#: Event types the engine and its plugins publish (Docker's names, plus our own).
EVENT_TYPES = (
    "container", "image", "volume", "network", "daemon", "plugin",
    "service", "node", "secret", "config",
)  # fmt: skip


class EventsLagged(ShoalError):
    """A subscriber's buffer overflowed: some events were not delivered to it."""


@dataclass(frozen=True)
class Event:
    """One event. ``time_nano`` is nanoseconds since the epoch."""

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    scope: str = "local"
    time_nano: int = field(default_factory=time.time_ns)

    def to_docker(self) -> dict[str, Any]:
        """The event as the Docker Engine API's /events endpoint sends it."""
        return {
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
            "scope": self.scope,
            "time": self.time_nano // 1_000_000_000,
            "timeNano": self.time_nano,
        }


class _Subscriber:
    def __init__(self, buffer: int, accept: Callable[[Event], bool]) -> None:
        self.send, self.receive = trio.open_memory_channel[Event](buffer)
        self.accept = accept
        self.lagged = False


class EventBus:
    """Fan-out of events to subscribers, with a short history for ``since`` queries."""

    def __init__(self, history: int = 1024, buffer: int = 1024, observe: Callable[[Event], None] | None = None) -> None:
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        self._subscribers: set[_Subscriber] = set()
        self._buffer = buffer
        self._observe = observe

    def publish(self, event: Event) -> None:
        """Deliver an event to every subscriber now; never blocks."""
        if event.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event.type!r}; expected one of {', '.join(EVENT_TYPES)}")
        self._history.append(event)
        for sub in self._subscribers:
            if sub.lagged or not sub.accept(event):
                continue
            try:
                sub.send.send_nowait(event)
            except trio.WouldBlock:
                sub.lagged = True
        if self._observe is not None:
            try:
                self._observe(event)
            except Exception:
                log.exception("an event observer failed on %s %s", event.type, event.action)

    def emit(self, type: str, action: str, actor_id: str, **attributes: str) -> Event:
        """Publish an event built from its parts, and return it."""
        event = Event(type, action, actor_id, attributes)
        self.publish(event)
        return event

    def history(self, since_nano: int = 0) -> list[Event]:
        """Events kept in memory that happened at or after ``since_nano``."""
        return [e for e in self._history if e.time_nano >= since_nano]

    async def subscribe(
        self, accept: Callable[[Event], bool] = lambda e: True, since_nano: int | None = None
    ) -> AsyncIterator[Event]:
        """Yield matching events: the kept ones since ``since_nano`` if given, then live ones.

        Raises ``EventsLagged`` when this subscriber fell more than the buffer behind.
        """
        sub = _Subscriber(self._buffer, accept)
        self._subscribers.add(sub)
        try:
            if since_nano is not None:
                for event in self.history(since_nano):
                    if accept(event):
                        yield event
            while True:
                if sub.lagged and sub.receive.statistics().current_buffer_used == 0:
                    raise EventsLagged(f"event subscriber fell more than {self._buffer} events behind")
                yield await sub.receive.receive()
        finally:
            self._subscribers.discard(sub)
            sub.send.close()
            sub.receive.close()
