"""What the sqlite store does beyond the conformance suite: several processes on one file,
compaction, recovery from a killed writer, its options and its plugin glue."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from shoal.errors import InvalidArgument, ShoalError
from shoal.plugin import PluginContext
from shoal.plugins.sqlite import SqliteConfig, plugin
from shoal.plugins.sqlite.database import SCHEMA_VERSION
from shoal.plugins.sqlite.store import SqliteStore
from shoal.store import Change, Compacted, Create, Update
from shoal.testing.store import summary, take, watching

# Run by a child interpreter: commits to the store at argv[1] as writer argv[2], once it is
# told to go (the file argv[1] + ".go" exists), so that several writers start together.
# "count N": N transactions, each creating its own item and incrementing the shared counter.
# "forever": the same until killed.
WRITER = """
import os, sys, trio
from shoal.errors import Conflict
from shoal.store import Create, Update
from shoal.plugins.sqlite.store import SqliteStore

async def main(path, name, mode, count):
    store = await SqliteStore.open(path, history=None)
    print("ready", flush=True)
    while not os.path.exists(path + ".go"):
        await trio.sleep(0.002)
    n = 0
    while mode == "forever" or n < count:
        counter = await store.get("counter", "c")
        try:
            await store.commit([
                Create("item", f"{name}-{n:04}", {"writer": name, "n": n}),
                Update("counter", "c", {"n": counter.data["n"] + 1}, counter.version),
            ])
        except Conflict:
            continue  # the other writer moved the counter: read it again
        n += 1
        await trio.sleep(0.002)  # leave the other writer a moment to take the write lock
    await store.aclose()

trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
"""


@asynccontextmanager
async def writer_process(path: Path, name: str, mode: str, count: int = 0) -> AsyncIterator[trio.Process]:
    """Start a child writer and wait until it has opened the store; kill it (by its PID) on
    exit if it still runs."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", WRITER, str(path), name, mode, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        said = b""
        while not said.endswith(b"\n"):
            chunk = await proc.stdout.receive_some()
            assert chunk, "the writer ended before it was ready"
            said += chunk
        assert said == b"ready\n"
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                await stream.aclose()


def go(path: Path) -> None:
    """Let the writers waiting on the store at ``path`` start."""
    Path(f"{path}.go").touch()


async def wait_ok(proc: trio.Process) -> None:
    assert proc.stderr is not None
    errors = b""
    async for chunk in proc.stderr:
        errors += chunk
    assert await proc.wait() == 0, errors.decode()


def check_consistent(path: Path) -> tuple[int, int]:
    """Check the file's invariants with plain sqlite3; returns (revision, items)."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (revision,) = conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        revisions = [r for (r,) in conn.execute("SELECT DISTINCT revision FROM changes ORDER BY revision")]
        (counter,) = conn.execute("SELECT data FROM objects WHERE kind = 'counter'").fetchone()
        (items,) = conn.execute("SELECT count(*) FROM objects WHERE kind = 'item'").fetchone()
        (created,) = conn.execute("SELECT count(DISTINCT created) FROM objects WHERE kind = 'item'").fetchone()
    finally:
        conn.close()
    # Every transaction is whole: one counter increment per item, each at its own revision.
    assert revisions == list(range(1, revision + 1))
    assert counter == f'{{"n":{items}}}'
    assert created == items == revision - 1
    return revision, items


async def test_two_processes_write_one_file(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    count = 40
    async with await SqliteStore.open(path, history=None) as store:
        await store.create("counter", "c", {"n": 0})
        seen: list[Change] = []
        async with watching(store, 1, ["item"]) as changes:
            with trio.fail_after(30):
                async with (
                    writer_process(path, "a", "count", count) as a,
                    writer_process(path, "b", "count", count) as b,
                ):
                    go(path)
                    seen = await take(changes, 2 * count)
                    await wait_ok(a)
                    await wait_ok(b)
        # The watcher here saw every write of the other processes, in revision order.
        revisions = [c.revision for c in seen]
        assert revisions == sorted(set(revisions))
        assert sorted(c.object.id for c in seen) == sorted(f"{w}-{n:04}" for w in "ab" for n in range(count))
        assert (await store.get("counter", "c")).data == {"n": 2 * count}
        assert await store.revision() == 1 + 2 * count
        # Both writers really interleaved rather than one running after the other.
        writers = [c.object.data["writer"] for c in seen]
        switches = sum(1 for x, y in zip(writers, writers[1:]) if x != y)
        assert switches > 1
    assert check_consistent(path) == (1 + 2 * count, 2 * count)


async def test_killed_writer_leaves_a_consistent_file(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with await SqliteStore.open(path, history=None) as store:
        await store.create("counter", "c", {"n": 0})
        async with writer_process(path, "k", "forever") as proc:
            go(path)
            with trio.fail_after(30):
                while await store.revision() < 30:
                    await trio.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
    revision, items = check_consistent(path)
    assert revision >= 30
    # The file opens again and takes new writes at the next revision.
    async with await SqliteStore.open(path, history=None) as store:
        assert await store.revision() == revision
        counter = await store.get("counter", "c")
        assert counter.data == {"n": items}
        (_, updated) = await store.commit(
            [Create("item", "after", {}), Update("counter", "c", {"n": items + 1}, counter.version)]
        )
        assert updated is not None and updated.version == revision + 1
    check_consistent(path)


async def test_watchers_wake_on_a_commit_in_this_process_without_polling(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "store.db", poll_interval=3600) as store:
        async with watching(store, 0) as changes:

            async def commit_later() -> None:
                await trio.sleep(0.05)  # the watcher is waiting by now
                await store.create("thing", "a", {})

            with trio.fail_after(2):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(commit_later)
                    assert summary(await take(changes, 1)) == [(1, "create", "thing", "a", 1)]


async def test_many_concurrent_reads(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "store.db") as store:
        await store.create("thing", "a", {"n": 1})
        results: list[int] = []

        async def read() -> None:
            results.append((await store.get("thing", "a")).data["n"])

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(read)
        assert results == [1] * 50


async def test_compaction_keeps_only_the_history(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with await SqliteStore.open(path, history=5) as store:
        obj = await store.create("thing", "a", {"n": 0})
        for n in range(1, 20):
            obj = await store.update("thing", "a", {"n": n}, obj.version)
        conn = sqlite3.connect(path)
        try:
            kept = [r for (r,) in conn.execute("SELECT revision FROM changes ORDER BY revision")]
        finally:
            conn.close()
        assert kept == [16, 17, 18, 19, 20]
        async with watching(store, 15) as changes:
            assert [c.object.data["n"] for c in await take(changes, 5)] == [15, 16, 17, 18, 19]
        with pytest.raises(Compacted, match="revision 14"):
            async with watching(store, 14) as changes:
                await take(changes, 1)


async def test_watcher_that_falls_behind_is_told(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "store.db", history=5) as store:
        obj = await store.create("thing", "a", {"n": 0})
        obj = await store.update("thing", "a", {"n": 1}, obj.version)
        async with watching(store, 0) as changes:
            assert [c.revision for c in await take(changes, 2)] == [1, 2]
            for n in range(2, 12):
                obj = await store.update("thing", "a", {"n": n}, obj.version)
            with pytest.raises(Compacted):
                await take(changes, 1)


async def test_a_smaller_history_compacts_on_the_next_commit(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with await SqliteStore.open(path, history=None) as store:
        for n in range(10):
            await store.create("thing", str(n), {})
    async with await SqliteStore.open(path, history=3) as store:
        async with watching(store, 0) as changes:  # nothing compacted before a commit
            assert len(await take(changes, 10)) == 10
        await store.create("thing", "x", {})
        with pytest.raises(Compacted):
            async with watching(store, 7) as changes:
                await take(changes, 1)
        async with watching(store, 8) as changes:
            assert [c.revision for c in await take(changes, 3)] == [9, 10, 11]


async def test_close_ends_watchers(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "store.db")
    failure: list[BaseException] = []

    async def watcher(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with watching(store, 0) as changes:
            task_status.started()
            try:
                await take(changes, 1)
            except trio.ClosedResourceError as exc:
                failure.append(exc)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(watcher)
            await trio.sleep(0.05)  # let it reach its wait for a commit
            await store.aclose()
    assert len(failure) == 1
    with pytest.raises(trio.ClosedResourceError):
        await store.get("thing", "a")
    with pytest.raises(trio.ClosedResourceError):
        await store.create("thing", "a", {})
    await store.aclose()  # closing twice is harmless


async def test_data_that_is_not_json_is_refused(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "store.db") as store:
        with pytest.raises(InvalidArgument, match="create thing/b: data is not JSON"):
            await store.commit([Create("thing", "a", {}), Create("thing", "b", {"x": object()})])
        with pytest.raises(InvalidArgument, match="create thing/c: data is not JSON"):
            await store.create("thing", "c", {"x": float("nan")})
        with pytest.raises(InvalidArgument, match="label"):
            await store.create("thing", "d", {}, {"n": 1})  # type: ignore[dict-item]
        with pytest.raises(InvalidArgument, match="non-empty"):
            await store.create("thing", "", {})
        with pytest.raises(InvalidArgument, match="not a store operation"):
            await store.commit(["create thing/e"])  # type: ignore[list-item]
        assert await store.revision() == 0 and await store.list("thing") == []


async def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="history"):
        await SqliteStore.open(tmp_path / "a.db", history=0)
    with pytest.raises(InvalidArgument, match="synchronous"):
        await SqliteStore.open(tmp_path / "a.db", synchronous="off")  # type: ignore[arg-type]
    assert not (tmp_path / "a.db").exists()


async def test_file_uses_wal_and_refuses_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with await SqliteStore.open(path, synchronous="normal") as store:
        await store.create("thing", "a", {})
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    finally:
        conn.close()
    with pytest.raises(ShoalError, match="schema version"):
        await SqliteStore.open(path)


async def test_plugin_setup_opens_the_store_in_its_data_dir(tmp_path: Path) -> None:
    ctx = PluginContext(
        plugin=plugin,
        config=SqliteConfig(history=100),
        data_root=tmp_path,
        run_root=tmp_path / "run",
        events=None,  # type: ignore[arg-type]
        hook=None,  # type: ignore[arg-type]
        _slots={},
        _add_hooks=lambda plugin, obj: None,
    )
    async with plugin.setup(ctx) as store:  # type: ignore[union-attr]
        assert isinstance(store, SqliteStore)
        assert store.history == 100
        await store.create("thing", "a", {})
    assert (tmp_path / "plugins" / "sqlite" / "store.db").exists()
    async with await SqliteStore.open(tmp_path / "plugins" / "sqlite" / "store.db") as store:
        assert (await store.get("thing", "a")).version == 1
