"""The spare pool's bookkeeping over fake spares (no kernel involved)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from shoal.plugins.bridge import netlink, pool


class FakeSpare:
    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/fake/{name}"
        self.closed = False

    def close(self) -> None:
        self.closed = True


async def settled(made: list[FakeSpare], count: int) -> None:
    """Wait for the filler (it works in a thread, which trio's test helpers do not see)."""
    with trio.fail_after(5):
        while len(made) < count:
            await trio.sleep(0.001)
    await trio.sleep(0.02)  # and nothing more comes
    assert len(made) == count


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[FakeSpare]:
    spares: list[FakeSpare] = []

    def make_spare(host: Any, name: str, mtu: int) -> FakeSpare:
        spares.append(FakeSpare(name))
        return spares[-1]

    monkeypatch.setattr(netlink, "make_spare", make_spare)
    return spares


async def test_spares_are_taken_once_replaced_after_use_and_let_go_together(made: list[FakeSpare]) -> None:
    spares = pool.SparePool(host=None, size=2, prefix="tsp", mtu=1500)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(spares.run)
        await settled(made, 2)
        assert all(len(s.name) <= 15 and s.name.startswith("tsp") for s in made)
        first = spares.take("c1")
        assert first == made[0].path and spares.take("c1") == first  # the same one again
        assert spares.unwired("c1") is made[0]
        await settled(made, 2)  # not replaced before the container is wired
        spares.wired("c1")
        assert spares.unwired("c1") is None
        await settled(made, 3)
        spares.take("c2")
        assert spares.retire("c1") and spares.retire("c2") and not spares.retire("c3")
        assert not made[0].closed  # released spares wait for bury
        spares.bury()
        assert made[0].closed and made[1].closed and not made[2].closed
        await spares.close()
    assert all(s.closed for s in made)


async def test_an_empty_pool_gives_nothing(made: list[FakeSpare]) -> None:
    spares = pool.SparePool(host=None, size=0, prefix="tsp", mtu=1500)  # type: ignore[arg-type]
    assert spares.take("c1") is None and spares.unwired("c1") is None and not spares.retire("c1")
    await spares.close()
