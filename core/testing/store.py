"""The conformance suite of the store slot: what every ``Store`` provider must do.

Use it from a provider's test module::

    from contextlib import asynccontextmanager
    import pytest
    from shoal.testing.store import StoreConformance

    @pytest.fixture
    def store_factory(tmp_path):
        @asynccontextmanager
        async def open_store():
            store = await MyStore.open(tmp_path / "db", history=32)
            try:
                yield store
            finally:
                await store.aclose()
        return open_store

    @pytest.fixture
    def store_history():
        return 32  # revisions of changes the store keeps; None (the default): no limit

    class TestMyStore(StoreConformance):
        pass

``store_factory()`` must open the store on the same backing data each time it is called within
one test (the suite closes and reopens it to prove durability), and start from an empty store
in each test. A history limit, if the provider has one, must be at least 16 revisions; the
store keeps at least that many, and compacts what is older than twice that.

The contract beyond ``shoal.slots.Store``, as the tests below pin it down:

- The revision grows by exactly one per committed transaction that changes something; a
  transaction of only ``Check`` ops changes nothing and leaves it as it is.
- The ops of one transaction apply in order, each seeing the ones before it, and all changes
  share the transaction's revision: every object written gets it as ``version``.
- A failing op raises ``Conflict`` or ``NotFound`` whose message names it ("update kind/id"),
  and nothing of the transaction is applied.
- ``watch`` yields one ``Change`` per op that changed something, in revision order and, within
  a revision, in op order.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import trio

from shoal.errors import Conflict, NotFound
from shoal.slots import Store
from shoal.store import Change, Check, Compacted, Create, Delete, StoredObject, Update

StoreFactory = Callable[[], AbstractAsyncContextManager[Store]]

#: Seconds any single wait of the suite may take before the test fails.
TIMEOUT = 10.0


@asynccontextmanager
async def watching(
    store: Store, since: int, kinds: Sequence[str] | None = None
) -> AsyncIterator[AsyncIterator[Change]]:
    """Open a watch and close it on exit, when the provider's iterator can be closed."""
    changes = store.watch(since, kinds)
    try:
        yield changes
    finally:
        aclose = getattr(changes, "aclose", None)
        if aclose is not None:
            await aclose()


async def take(changes: AsyncIterator[Change], count: int) -> list[Change]:
    """The next ``count`` changes of a watch; fails the test if they do not come in time."""
    got: list[Change] = []
    with trio.fail_after(TIMEOUT):
        while len(got) < count:
            got.append(await changes.__anext__())
    return got


def summary(changes: Sequence[Change]) -> list[tuple[int, str, str, str, int]]:
    """Changes as (revision, action, kind, id, version) for compact comparisons."""
    return [(c.revision, c.action, c.object.kind, c.object.id, c.object.version) for c in changes]


class StoreConformance:
    """Tests every store provider passes; subclass it as ``Test<Provider>`` in a test module."""

    # ------------------------------------------------------------------- objects

    async def test_new_store_is_empty(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            assert isinstance(store, Store)
            assert await store.revision() == 0
            assert await store.list("thing") == []
            with pytest.raises(NotFound):
                await store.get("thing", "a")

    async def test_create_then_get(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            made = await store.create("thing", "a", {"size": 3}, {"tier": "web"})
            assert made == StoredObject("thing", "a", 1, {"size": 3}, {"tier": "web"}, created=1)
            assert await store.get("thing", "a") == made
            assert await store.revision() == 1

    async def test_create_taken_id_conflicts(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            await store.create("thing", "a", {"n": 1})
            with pytest.raises(Conflict, match="create thing/a"):
                await store.create("thing", "a", {"n": 2})
            assert (await store.get("thing", "a")).data == {"n": 1}
            assert await store.revision() == 1
            # Ids are unique within a kind only.
            other = await store.create("other", "a", {"n": 3})
            assert other.version == 2

    async def test_data_and_labels_round_trip_as_json(self, store_factory: StoreFactory) -> None:
        data = {
            "name": "snow ☃ \u00e9\U0001f433",
            "count": 42,
            "ratio": 0.25,
            "big": 2**53,
            "negative": -7,
            "flags": [True, False, None],
            "nested": {"list": [1, "two", {"three": 3}], "empty": {}},
        }
        labels = {"com.example.role": "db", "tier": "", "ünïcode": "välue"}
        async with store_factory() as store:
            made = await store.create("thing", "a", data, labels)
            assert made.data == data and made.labels == labels
            got = await store.get("thing", "a")
            assert got.data == data and got.labels == labels

    async def test_get_missing_names_the_object(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            await store.create("thing", "a", {})
            with pytest.raises(NotFound, match="thing/b"):
                await store.get("thing", "b")
            with pytest.raises(NotFound):
                await store.get("other", "a")

    async def test_list_by_kind_ordered_by_id(self, store_factory: StoreFactory) -> None:
        ids = ["b", "a", "c10", "c2", "A", "z", "é", "0"]
        async with store_factory() as store:
            for id in ids:
                await store.create("thing", id, {"id": id})
            await store.create("other", "m", {})
            listed = await store.list("thing")
            assert [o.id for o in listed] == sorted(ids)
            assert all(o.kind == "thing" and o.data == {"id": o.id} for o in listed)
            assert [o.id for o in await store.list("other")] == ["m"]
            assert await store.list("none") == []

    async def test_list_filters_by_all_labels(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            await store.create("thing", "1", {}, {"app": "web", "env": "prod"})
            await store.create("thing", "2", {}, {"app": "web", "env": "dev"})
            await store.create("thing", "3", {}, {"app": "db", "env": "prod"})
            await store.create("thing", "4", {}, {})
            await store.create("other", "5", {}, {"app": "web", "env": "prod"})

            async def ids(labels: dict[str, str] | None) -> list[str]:
                return [o.id for o in await store.list("thing", labels)]

            assert await ids(None) == ["1", "2", "3", "4"]
            assert await ids({}) == ["1", "2", "3", "4"]
            assert await ids({"app": "web"}) == ["1", "2"]
            assert await ids({"env": "prod"}) == ["1", "3"]
            assert await ids({"app": "web", "env": "prod"}) == ["1"]
            assert await ids({"app": "web", "env": "test"}) == []
            assert await ids({"missing": ""}) == []

    async def test_list_sees_label_changes(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            a = await store.create("thing", "a", {}, {"role": "old"})
            await store.update("thing", "a", {"v": 2}, a.version, {"role": "new"})
            assert await store.list("thing", {"role": "old"}) == []
            assert [o.id for o in await store.list("thing", {"role": "new"})] == ["a"]

    # ------------------------------------------------------------------- update, delete, check

    async def test_update_at_current_version(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            a = await store.create("thing", "a", {"n": 1}, {"keep": "me"})
            await store.create("thing", "b", {})
            updated = await store.update("thing", "a", {"n": 2}, a.version)
            assert updated == StoredObject("thing", "a", 3, {"n": 2}, {"keep": "me"}, created=1)
            assert await store.get("thing", "a") == updated
            relabelled = await store.update("thing", "a", {"n": 3}, updated.version, {"new": "set"})
            assert relabelled.labels == {"new": "set"}
            assert relabelled.version == 4 and relabelled.created == 1

    async def test_update_with_stale_version_conflicts(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            a = await store.create("thing", "a", {"n": 1})
            b = await store.update("thing", "a", {"n": 2}, a.version)
            with pytest.raises(Conflict, match="update thing/a"):
                await store.update("thing", "a", {"n": 3}, a.version)
            assert await store.get("thing", "a") == b
            assert await store.revision() == 2

    async def test_update_missing_is_not_found(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            with pytest.raises(NotFound, match="update thing/a"):
                await store.update("thing", "a", {}, 1)
            assert await store.revision() == 0

    async def test_delete(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            a = await store.create("thing", "a", {})
            b = await store.create("thing", "b", {})
            await store.delete("thing", "a")
            with pytest.raises(NotFound):
                await store.get("thing", "a")
            with pytest.raises(Conflict, match="delete thing/b"):
                await store.delete("thing", "b", a.version)
            assert await store.get("thing", "b") == b
            await store.delete("thing", "b", b.version)
            assert await store.list("thing") == []
            assert await store.revision() == 4

    async def test_delete_missing_is_not_found(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            with pytest.raises(NotFound, match="delete thing/a"):
                await store.delete("thing", "a")
            with pytest.raises(NotFound, match="delete thing/a"):
                await store.delete("thing", "a", 1)
            assert await store.revision() == 0

    async def test_recreate_after_delete_starts_anew(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            await store.create("thing", "a", {"life": 1})
            await store.delete("thing", "a")
            again = await store.create("thing", "a", {"life": 2})
            assert again == StoredObject("thing", "a", 3, {"life": 2}, {}, created=3)

    async def test_check_ops(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            a = await store.create("thing", "a", {})
            assert await store.commit([Check("thing", "a", a.version), Check("thing", "b", 0)]) == [None, None]
            # A transaction of checks only changes nothing, so the revision stays.
            assert await store.revision() == 1
            with pytest.raises(Conflict, match="check thing/a"):
                await store.commit([Check("thing", "a", a.version + 1)])
            with pytest.raises(Conflict, match="check thing/a"):
                await store.commit([Check("thing", "a", 0)])
            with pytest.raises(Conflict, match="check thing/b"):
                await store.commit([Check("thing", "b", 1)])

    async def test_check_guards_a_write(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            lock = await store.create("lock", "l", {})
            (_, made) = await store.commit([Check("lock", "l", lock.version), Create("thing", "a", {})])
            assert made is not None and made.version == 2
            with pytest.raises(Conflict, match="check lock/l"):
                await store.commit([Check("lock", "l", 0), Create("thing", "b", {})])
            assert [o.id for o in await store.list("thing")] == ["a"]

    # ------------------------------------------------------------------- transactions

    async def test_transaction_applies_at_one_revision(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            old = await store.create("thing", "old", {"n": 1})
            gone = await store.create("thing", "gone", {})
            results = await store.commit(
                [
                    Create("thing", "new", {"n": 0}, {"x": "y"}),
                    Update("thing", "old", {"n": 2}, old.version),
                    Delete("thing", "gone", gone.version),
                    Check("thing", "new", 3),
                ]
            )
            assert results == [
                StoredObject("thing", "new", 3, {"n": 0}, {"x": "y"}, created=3),
                StoredObject("thing", "old", 3, {"n": 2}, {}, created=1),
                None,
                None,
            ]
            assert await store.revision() == 3
            assert [o.id for o in await store.list("thing")] == ["new", "old"]
            assert await store.get("thing", "new") == results[0]
            assert await store.get("thing", "old") == results[1]

    async def test_failing_op_leaves_nothing_applied(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            a = await store.create("thing", "a", {"n": 1})
            await store.update("thing", "a", {"n": 2}, a.version)
            before = await store.list("thing")
            failing: list[tuple[list[Any], type[Exception], str]] = [
                ([Create("thing", "x", {}), Update("thing", "a", {"n": 9}, a.version)], Conflict, "update thing/a"),
                ([Create("thing", "x", {}), Create("thing", "x", {})], Conflict, "create thing/x"),
                ([Delete("thing", "a"), Delete("thing", "nope")], NotFound, "delete thing/nope"),
                ([Update("thing", "a", {"n": 9}, 2), Check("thing", "a", 2)], Conflict, "check thing/a"),
                ([Create("thing", "y", {}), Create("thing", "a", {})], Conflict, "create thing/a"),
            ]
            for ops, error, names in failing:
                with pytest.raises(error, match=names):
                    await store.commit(ops)
                assert await store.list("thing") == before
                assert await store.revision() == 2
            async with watching(store, 0) as changes:
                # The next change after the two real ones is this probe's: no failed op left one.
                await store.create("probe", "p", {})
                assert [c.revision for c in await take(changes, 3)] == [1, 2, 3]

    async def test_ops_see_earlier_ops_of_their_transaction(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            a = await store.create("thing", "a", {"life": 1})
            # Replace an object in one step: delete it and create it again.
            _, again = await store.commit([Delete("thing", "a", a.version), Create("thing", "a", {"life": 2})])
            assert again == StoredObject("thing", "a", 2, {"life": 2}, {}, created=2)
            _, checked = await store.commit([Create("thing", "b", {}), Check("thing", "b", 3)])
            assert checked is None
            assert (await store.get("thing", "b")).version == 3

    async def test_empty_transaction_changes_nothing(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            await store.create("thing", "a", {})
            assert await store.commit([]) == []
            assert await store.revision() == 1

    async def test_revision_grows_by_one_per_commit(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            seen = [await store.revision()]
            obj = await store.create("thing", "a", {"n": 0})
            seen.append(await store.revision())
            for n in range(1, 6):
                obj = await store.update("thing", "a", {"n": n}, obj.version)
                assert obj.version == await store.revision()
                seen.append(obj.version)
            await store.commit([Create("thing", "b", {}), Create("thing", "c", {})])
            seen.append(await store.revision())
            assert seen == list(range(8))

    # ------------------------------------------------------------------- watch

    async def _history(self, store: Store) -> list[Change]:
        """Commit a small history of every kind of change; returns the changes expected."""
        a = await store.create("thing", "a", {"n": 1}, {"l": "1"})
        b = await store.create("other", "b", {"n": 2})
        a2 = await store.update("thing", "a", {"n": 3}, a.version)
        results = await store.commit([Create("thing", "c", {}), Delete("other", "b", b.version)])
        c = results[0]
        assert c is not None
        await store.delete("thing", "a")
        return [
            Change(1, "create", a),
            Change(2, "create", b),
            Change(3, "update", a2),
            Change(4, "create", c),
            Change(4, "delete", b),
            Change(5, "delete", a2),
        ]

    async def test_watch_replays_from_zero(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            expected = await self._history(store)
            async with watching(store, 0) as changes:
                assert await take(changes, len(expected)) == expected

    async def test_watch_from_a_middle_revision(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            expected = await self._history(store)
            for since in (2, 3, 4):
                async with watching(store, since) as changes:
                    after = [c for c in expected if c.revision > since]
                    assert await take(changes, len(after)) == after

    async def test_watch_kinds_filter(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            expected = await self._history(store)
            async with watching(store, 0, ["other"]) as changes:
                others = [c for c in expected if c.object.kind == "other"]
                assert await take(changes, len(others)) == others
                # Live changes are filtered too: the next one is the marker, not "thing"s.
                skipped = await store.create("thing", "skipped", {})
                marker = await store.create("other", "marker", {})
                assert await take(changes, 1) == [Change(7, "create", marker)]
            async with watching(store, 0, ["thing", "nothing"]) as changes:
                things = [c for c in expected if c.object.kind == "thing"]
                assert await take(changes, len(things) + 1) == [*things, Change(6, "create", skipped)]

    async def test_watch_streams_live_changes_in_order(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            await store.create("thing", "before", {})
            got: list[Change] = []
            async with watching(store, await store.revision()) as changes:

                async def writer() -> None:
                    obj = await store.create("thing", "a", {"n": 0})
                    for n in range(1, 10):
                        await trio.sleep(0.001 * random.random())
                        obj = await store.update("thing", "a", {"n": n}, obj.version)
                    await store.delete("thing", "a", obj.version)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(writer)
                    got = await take(changes, 11)
            assert summary(got) == [
                (2, "create", "thing", "a", 2),
                *[(r, "update", "thing", "a", r) for r in range(3, 12)],
                (12, "delete", "thing", "a", 11),
            ]
            assert [c.object.data for c in got] == [{"n": n} for n in range(10)] + [{"n": 9}]

    async def test_watch_joins_replay_and_live_without_gap(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            for n in range(5):
                await store.create("thing", f"old{n}", {})
            async with watching(store, 2) as changes:
                first = await take(changes, 1)
                for n in range(5):
                    await store.create("thing", f"new{n}", {})
                rest = await take(changes, 7)
            assert [c.revision for c in first + rest] == list(range(3, 11))

    async def test_watchers_are_independent(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            async with watching(store, 0) as one, watching(store, 0, ["b"]) as two:
                await store.create("a", "1", {})
                await store.create("b", "1", {})
                assert summary(await take(one, 2)) == [(1, "create", "a", "1", 1), (2, "create", "b", "1", 2)]
                assert summary(await take(two, 1)) == [(2, "create", "b", "1", 2)]

    async def test_watch_compacted_history(self, store_factory: StoreFactory, store_history: int | None) -> None:
        if store_history is None:
            pytest.skip("the provider keeps its whole history (store_history is None)")
        async with store_factory() as store:
            obj = await store.create("thing", "a", {"n": 0})
            # Past twice the limit, so that a provider may compact in batches.
            for n in range(2 * store_history + 3):
                obj = await store.update("thing", "a", {"n": n + 1}, obj.version)
            last = await store.revision()
            oldest_kept = last - store_history  # changes after it must all still be there
            with pytest.raises(Compacted):
                async with watching(store, 0) as changes:
                    await take(changes, 1)
            async with watching(store, oldest_kept) as changes:
                kept = await take(changes, store_history)
            assert [c.revision for c in kept] == list(range(oldest_kept + 1, last + 1))

    # ------------------------------------------------------------------- durability

    async def test_state_survives_close_and_reopen(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            expected = await self._history(store)
            kept = await store.create("thing", "kept", {"deep": {"x": [1, 2]}}, {"a": "b"})
            revision = await store.revision()
        async with store_factory() as store:
            assert await store.revision() == revision
            assert await store.list("thing") == [await store.get("thing", "c"), kept]
            assert await store.get("thing", "kept") == kept
            assert await store.list("thing", {"a": "b"}) == [kept]
            async with watching(store, 0) as changes:
                assert await take(changes, len(expected) + 1) == [*expected, Change(revision, "create", kept)]
            # Revisions continue where they were.
            assert (await store.update("thing", "kept", {}, kept.version)).version == revision + 1

    # ------------------------------------------------------------------- concurrency

    async def test_concurrent_increments_lose_no_update(self, store_factory: StoreFactory) -> None:
        tasks, rounds = 20, 5
        async with store_factory() as store:
            await store.create("counter", "c", {"n": 0})
            conflicts = 0

            async def increment() -> None:
                nonlocal conflicts
                for _ in range(rounds):
                    while True:
                        current = await store.get("counter", "c")
                        await trio.sleep(0)  # let the other tasks read the same version
                        try:
                            await store.update("counter", "c", {"n": current.data["n"] + 1}, current.version)
                            break
                        except Conflict:
                            conflicts += 1

            with trio.fail_after(TIMEOUT * 3):
                async with trio.open_nursery() as nursery:
                    for _ in range(tasks):
                        nursery.start_soon(increment)
            final = await store.get("counter", "c")
            assert final.data == {"n": tasks * rounds}
            assert final.version == await store.revision() == 1 + tasks * rounds
            assert conflicts > 0, "the tasks never raced: the test proved nothing"

    async def test_concurrent_creates_all_land_with_distinct_revisions(self, store_factory: StoreFactory) -> None:
        count = 30
        async with store_factory() as store:
            made: list[StoredObject] = []

            async def create(n: int) -> None:
                made.append(await store.create("thing", f"t{n:02}", {"n": n}))

            with trio.fail_after(TIMEOUT * 3):
                async with trio.open_nursery() as nursery:
                    for n in range(count):
                        nursery.start_soon(create, n)
            assert sorted(o.version for o in made) == list(range(1, count + 1))
            listed = await store.list("thing")
            assert [o.id for o in listed] == [f"t{n:02}" for n in range(count)]
            assert sorted(listed, key=lambda o: o.version) == sorted(made, key=lambda o: o.version)
