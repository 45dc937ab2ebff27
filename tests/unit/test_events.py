"""The event bus: history replay, filtering, and slow subscribers told they lagged."""

from __future__ import annotations

import time

import pytest
import trio

from shoal.events import EventBus, EventsLagged


async def test_replay_since_then_live() -> None:
    bus = EventBus()
    bus.emit("container", "create", "old")
    cut = time.time_ns()
    bus.emit("container", "start", "a")
    bus.emit("network", "create", "n")
    async with bus.subscribe(lambda e: e.type == "container", since_nano=cut) as events:
        first = await events.__anext__()
        bus.emit("container", "die", "a", exitCode="0")
        second = await events.__anext__()
    assert (first.action, first.actor_id) == ("start", "a")
    assert (second.action, second.attributes) == ("die", {"exitCode": "0"})


async def test_slow_subscriber_lags_without_blocking_the_publisher() -> None:
    bus = EventBus(buffer=4)
    async with bus.subscribe() as events:
        for i in range(10):
            bus.emit("image", "pull", f"img{i}")  # never blocks
        got = [await events.__anext__() for _ in range(4)]
        assert [e.actor_id for e in got] == ["img0", "img1", "img2", "img3"]
        with pytest.raises(EventsLagged, match="more than 4 events behind"):
            await events.__anext__()


async def test_unsubscribed_after_exit_and_unknown_type_refused() -> None:
    bus = EventBus()
    async with bus.subscribe():
        assert len(bus._subscribers) == 1
    assert not bus._subscribers
    with pytest.raises(ValueError, match="unknown event type 'contianer'"):
        bus.emit("contianer", "create", "x")


async def test_live_event_wakes_a_waiting_subscriber() -> None:
    bus = EventBus()
    async with bus.subscribe() as events:
        with trio.fail_after(1):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: _publish_later(bus))
                event = await events.__anext__()
    assert event.actor_id == "later"


async def _publish_later(bus: EventBus) -> None:
    await trio.sleep(0.01)
    bus.emit("volume", "create", "later")
