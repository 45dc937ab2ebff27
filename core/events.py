"""The kernel-wide event stream: what happened to containers, images, networks, services.

Events have the shape of Docker's ``/events`` messages so the Engine API can serve them as
they are. Publishing never blocks: each subscriber has a bounded buffer, and a subscriber
that falls that far behind is told so (``EventsLagged``) instead of slowing the publisher.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Mapping
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


class Subscription:
    """A subscriber's view of the stream: use as ``async with bus.subscribe() as events``.

    Iterating yields the kept events since the requested time first, then live ones, and
    raises ``EventsLagged`` once this subscriber fell more than its buffer behind.
    """

    def __init__(self, bus: EventBus, accept: Callable[[Event], bool], since_nano: int | None) -> None:
        self._bus = bus
        self.accept = accept
        self._send, self._receive = trio.open_memory_channel[Event](bus.buffer)
        self._replay: collections.deque[Event] = collections.deque()
        self._since_nano = since_nano
        self.lagged = False

    async def __aenter__(self) -> Subscription:
        self._bus._subscribers.add(self)
        if self._since_nano is not None:
            self._replay.extend(e for e in self._bus.history(self._since_nano) if self.accept(e))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._bus._subscribers.discard(self)
        self._send.close()
        self._receive.close()

    def offer(self, event: Event) -> None:
        if self.lagged or not self.accept(event):
            return
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.lagged = True

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self._replay:
            return self._replay.popleft()
        if self.lagged and self._receive.statistics().current_buffer_used == 0:
            raise EventsLagged(f"event subscriber fell more than {self._bus.buffer} events behind")
        return await self._receive.receive()


class EventBus:
    """Fan-out of events to subscribers, with a short history for ``since`` queries."""

    def __init__(self, history: int = 1024, buffer: int = 1024, observe: Callable[[Event], None] | None = None) -> None:
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        self._subscribers: set[Subscription] = set()
        self.buffer = buffer
        self._observe = observe

    def publish(self, event: Event) -> None:
        """Deliver an event to every subscriber now; never blocks."""
        if event.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event.type!r}; expected one of {', '.join(EVENT_TYPES)}")
        self._history.append(event)
        for sub in self._subscribers:
            sub.offer(event)
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

    def subscribe(self, accept: Callable[[Event], bool] = lambda e: True, since_nano: int | None = None) -> Subscription:
        """Subscribe to matching events, with the kept ones since ``since_nano`` first if given."""
        return Subscription(self, accept, since_nano)
