"""The store conformance suite on the raft provider: a 3-node in-process cluster, real WALs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from shoal.plugins.raft.store import RaftStore
from shoal.plugins.raft.testing import memory_cluster
from shoal.testing.store import StoreConformance

HISTORY = 16


@pytest.fixture
def store_history() -> int:
    return HISTORY


@pytest.fixture(params=["leader", "follower"])
def store_factory(request: pytest.FixtureRequest, shoal_tmp_data_root: Path) -> Callable[[], AbstractAsyncContextManager[RaftStore]]:
    """The store of the leader or of a follower (whose writes are forwarded) of a 3-node cluster."""

    @asynccontextmanager
    async def open_store() -> AsyncIterator[RaftStore]:
        async with memory_cluster(shoal_tmp_data_root, 3, history=HISTORY) as cluster:
            leader = await cluster.wait_leader()
            if request.param == "leader":
                yield leader.store
            else:
                yield next(m.store for m in cluster.members.values() if m is not leader)

    return open_store


class TestRaftStore(StoreConformance):
    """Every test of the suite, through the leader and through a follower."""
