"""In-process Raft clusters for tests: real nodes, real WALs, an in-memory or loopback network."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from .config import RaftConfig
from .disk_storage import DiskStorage
from .driver import DriverSettings, RaftDriver
from .messages import Role
from .network import Peers
from .store import RaftStore
from .transport import MemoryHub

CLUSTER_ID = "test-cluster"


@dataclass
class Member:
    """One node of an in-process cluster."""

    id: int
    driver: RaftDriver
    store: RaftStore
    scope: trio.CancelScope


class MemoryCluster:
    """Nodes on one ``MemoryHub``; each can be stopped and restarted on its data directory."""

    def __init__(self, root: Path, size: int, nursery: trio.Nursery, *, history: int | None,
                 settings: DriverSettings, seed: int) -> None:  # fmt: skip
        self.root = root
        self.ids = list(range(1, size + 1))
        self.hub = MemoryHub()
        self.nursery = nursery
        self.history = history
        self.settings = settings
        self.rng = random.Random(seed)
        self.members: dict[int, Member] = {}

    def address(self, node_id: int) -> str:
        return f"node{node_id}"

    async def start(self, node_id: int) -> Member:
        storage = DiskStorage.open(self.root / f"node{node_id}", CLUSTER_ID, node_id)
        storage.bootstrap(self.ids)
        store = RaftStore(self.history)
        transport = self.hub.transport(self.address(node_id))
        addresses = {i: self.address(i) for i in self.ids}

        def peers(driver: RaftDriver) -> Peers:
            return Peers(transport, node_id, CLUSTER_ID, addresses, driver)

        driver = RaftDriver(RaftConfig(id=node_id), storage, store, peers, self.settings,
                            random.Random(self.rng.random()), address=self.address(node_id))  # fmt: skip
        store.attach(driver)
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                try:
                    await driver.run(task_status=task_status)
                finally:
                    store.close()
                    storage.close()

        await self.nursery.start(run)
        member = Member(node_id, driver, store, scope)
        self.members[node_id] = member
        return member

    def stop(self, node_id: int) -> None:
        """Crash a node: its tasks are cancelled; its data directory stays."""
        self.members.pop(node_id).scope.cancel()

    def leader(self) -> Member | None:
        for m in self.members.values():
            if m.driver.node.role is Role.LEADER:
                return m
        return None

    async def wait_leader(self, timeout: float = 10.0) -> Member:
        with trio.fail_after(timeout):
            while True:
                leader = self.leader()
                if leader is not None:
                    return leader
                await trio.sleep(0.005)


@asynccontextmanager
async def memory_cluster(root: Path, size: int = 3, *, history: int | None = None,
                         settings: DriverSettings | None = None, seed: int = 0) -> AsyncIterator[MemoryCluster]:  # fmt: skip
    """Start ``size`` nodes with data under ``root``; stop them all on exit.

    Node 1 campaigns at once when the cluster is new (its log holds only the founding entries).
    """
    async with trio.open_nursery() as nursery:
        cluster = MemoryCluster(root, size, nursery, history=history,
                                settings=settings or DriverSettings(tick_interval=0.01), seed=seed)  # fmt: skip
        for node_id in cluster.ids:
            await cluster.start(node_id)
        first = cluster.members[1].driver
        if first.node.term == 1 and first.storage.last_index() == size:
            first.campaign()
        try:
            yield cluster
        finally:
            nursery.cancel_scope.cancel()
