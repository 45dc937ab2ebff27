"""A tiny lock-step network of Raft nodes for interaction tests.

Messages are delivered in FIFO order until none are left; links can be cut both ways or one
way. Each node's driver persists to its ``MemoryStorage``, applies committed entries (conf
changes included) and records read states, exactly as a real driver would.
"""

from __future__ import annotations

import random
from collections import deque

from shoal.plugins.raft.config import RaftConfig
from shoal.plugins.raft.messages import ConfChange, ConfState, Entry, EntryType, HardState, Message, ReadState, Role
from shoal.plugins.raft.node import RaftNode
from shoal.plugins.raft.storage import MemoryStorage


class Net:
    def __init__(
        self,
        size: int = 3,
        *,
        learners: tuple[int, ...] = (),
        logs: dict[int, list[int]] | None = None,
        terms: dict[int, int] | None = None,
        seed: int = 0,
        **config: object,
    ) -> None:
        """``logs`` gives a node's initial log as a list of terms (index 1, 2, ...)."""
        config.setdefault("pre_vote", False)
        config.setdefault("check_quorum", False)
        self.config = config
        self.seed = seed
        voters = tuple(range(1, size + 1))
        self.storages: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RaftNode] = {}
        self.applied: dict[int, list[Entry]] = {}
        self.read_states: dict[int, list[ReadState]] = {}
        self.blocked: set[tuple[int, int]] = set()
        self.sent: list[Message] = []
        for node_id in (*voters, *learners):
            storage = MemoryStorage(ConfState(voters=voters, learners=learners))
            terms_of_log = (logs or {}).get(node_id, [])
            storage.append([Entry(term=t, index=i + 1) for i, t in enumerate(terms_of_log)])
            term = (terms or {}).get(node_id, max(terms_of_log, default=0))
            storage.set_hard_state(HardState(term=term))
            self.storages[node_id] = storage
            self.start(node_id)
        self._queue: deque[Message] = deque()

    def start(self, node_id: int) -> RaftNode:
        """(Re)start a node from its storage; anything not persisted is lost."""
        config = RaftConfig(id=node_id, **self.config)  # type: ignore[arg-type]
        node = RaftNode(config, self.storages[node_id], random.Random(self.seed * 100 + node_id))
        self.nodes[node_id] = node
        self.applied.setdefault(node_id, [])
        self.read_states.setdefault(node_id, [])
        return node

    def add_node(self, node_id: int, conf_state: ConfState) -> RaftNode:
        self.storages[node_id] = MemoryStorage(conf_state)
        return self.start(node_id)

    def drain(self, node_id: int) -> list[Message]:
        """Run the driver for one node: persist, collect messages, apply, advance."""
        node, storage = self.nodes[node_id], self.storages[node_id]
        out: list[Message] = []
        while node.has_ready():
            rd = node.ready()
            if rd.snapshot is not None:
                storage.apply_snapshot(rd.snapshot)
            storage.append(rd.entries)
            if rd.hard_state is not None:
                storage.set_hard_state(rd.hard_state)
            out.extend(rd.messages)
            for e in rd.committed_entries:
                if e.type is EntryType.CONF_CHANGE:
                    node.apply_conf_change(ConfChange.decode(e.data))
                self.applied[node_id].append(e)
            self.read_states[node_id].extend(rd.read_states)
            node.advance(rd)
        return out

    def send(self, *messages: Message) -> None:
        self._queue.extend(messages)
        self.run()

    def run(self, max_messages: int = 100_000) -> None:
        """Deliver messages (including those they cause) until the network is quiet."""
        for node_id in list(self.nodes):
            self._queue.extend(self.drain(node_id))
        delivered = 0
        while self._queue:
            m = self._queue.popleft()
            self.sent.append(m)
            if (m.frm, m.to) in self.blocked or m.to not in self.nodes:
                continue
            self.nodes[m.to].step(m)
            self._queue.extend(self.drain(m.to))
            delivered += 1
            assert delivered < max_messages, "the network never went quiet"

    def tick(self, node_id: int | None = None, times: int = 1) -> None:
        for _ in range(times):
            for i in [node_id] if node_id is not None else list(self.nodes):
                self.nodes[i].tick()
            self.run()

    def elect(self, node_id: int) -> RaftNode:
        self.nodes[node_id].campaign()
        self.run()
        assert self.nodes[node_id].role is Role.LEADER
        return self.nodes[node_id]

    def isolate(self, node_id: int) -> None:
        for other in self.nodes:
            if other != node_id:
                self.blocked |= {(node_id, other), (other, node_id)}

    def cut(self, a: int, b: int) -> None:
        self.blocked |= {(a, b), (b, a)}

    def heal(self) -> None:
        self.blocked = set()

    def data_applied(self, node_id: int) -> list[bytes]:
        return [e.data for e in self.applied[node_id] if e.data and e.type is EntryType.NORMAL]
