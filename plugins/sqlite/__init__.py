"""The embedded default store: versioned objects in one SQLite file (WAL, durable)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from shoal import Plugin, PluginContext, setting


@dataclass(frozen=True)
class SqliteConfig:
    """Settings of the sqlite store."""

    path: str = setting("", "Database file; empty: store.db in the plugin's data directory.")
    history: int = setting(10000, "Changes kept for watch replay; older ones are compacted away.")
    synchronous: Literal["full", "normal"] = setting("full", "SQLite synchronous mode: full fsyncs every commit.")


@asynccontextmanager
async def setup(ctx: PluginContext) -> AsyncIterator[object]:
    from .store import SqliteStore

    path = ctx.config.path or str(ctx.data_dir / "store.db")
    store = await SqliteStore.open(path, history=ctx.config.history, synchronous=ctx.config.synchronous)
    try:
        yield store
    finally:
        await store.aclose()


plugin = Plugin(
    name="sqlite",
    summary="Embedded versioned object store in SQLite (one host).",
    slot="store",
    config=SqliteConfig,
    setup=setup,
)
