"""The store conformance suite on the sqlite provider."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from shoal.plugins.sqlite.store import SqliteStore
from shoal.testing.store import StoreConformance

HISTORY = 16


@pytest.fixture
def store_history() -> int:
    return HISTORY


@pytest.fixture
def store_factory(shoal_tmp_data_root: Path) -> Callable[[], AbstractAsyncContextManager[SqliteStore]]:
    path = shoal_tmp_data_root / "store.db"

    @asynccontextmanager
    async def open_store() -> AsyncIterator[SqliteStore]:
        store = await SqliteStore.open(path, history=HISTORY)
        try:
            yield store
        finally:
            await store.aclose()

    return open_store


class TestSqliteStore(StoreConformance):
    """Every test of the suite, on a store file in a temporary directory."""
