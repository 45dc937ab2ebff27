"""Seeded simulations of 3, 5 and 7 nodes under message loss, duplication, reordering, delay,
partitions (also one-way), crashes and restarts with torn writes.

Every step checks Election Safety, Log Matching, Leader Completeness and State Machine Safety;
after healing, a leader must be elected and a write committed within a bounded number of ticks;
the clients' key-value history must be linearizable. ``SHOAL_RAFT_SEEDS=N`` runs N seeds per
cluster size (``SHOAL_RAFT_SEED_START`` moves the first one); a failure prints the command that
replays its seed.
"""

from __future__ import annotations

import os

import pytest

from shoal.plugins.raft import log as raft_log
from shoal.plugins.raft.invariants import InvariantViolation
from shoal.plugins.raft.scenario import replay_command, run_simulation
from shoal.plugins.raft.sim import Cluster, Faults

DEFAULT_SEEDS = {3: 1500, 5: 500, 7: 300}


@pytest.mark.parametrize("size", sorted(DEFAULT_SEEDS))
def test_simulation_keeps_safety_and_liveness(size: int) -> None:
    count = int(os.environ.get("SHOAL_RAFT_SEEDS", DEFAULT_SEEDS[size]))
    start = int(os.environ.get("SHOAL_RAFT_SEED_START", 0))
    for seed in range(start, start + count):
        try:
            run_simulation(seed, size)
        except Exception as exc:
            pytest.fail(f"seed {seed} with {size} nodes failed: {exc!r}\nreplay: {replay_command(seed, size)}")


def test_simulation_is_deterministic() -> None:
    first, second = [], []
    run_simulation(7, 5, trace=first)
    run_simulation(7, 5, trace=second)
    assert first == second and first


def test_simulation_exercises_faults() -> None:
    trace: list[str] = []
    for seed in range(20):
        run_simulation(seed, 5, trace=trace)
    kinds = {line.split()[1] for line in trace}
    assert {"crash", "restart", "partition", "block", "heal", "isolate", "replace"} <= kinds


def test_checker_catches_a_broken_election_restriction(monkeypatch: pytest.MonkeyPatch) -> None:
    # Granting votes regardless of log freshness (§5.4.1) must be caught as a safety violation.
    monkeypatch.setattr(raft_log.RaftLog, "is_up_to_date", lambda self, index, term: True)
    with pytest.raises(InvariantViolation):
        for seed in range(200):
            run_simulation(seed, 3)


def test_minority_partition_cannot_commit() -> None:
    cluster = Cluster(5, seed=1, config={"election_tick": 10, "heartbeat_tick": 2}, faults=Faults())
    for _ in range(100):
        cluster.tick()
        if cluster.stable_leader():
            break
    leader = cluster.stable_leader()
    assert leader is not None
    others = [i for i in cluster.nodes if i != leader.id]
    cluster.network.partition({leader.id, others[0]}, set(others[1:]))
    pending = cluster.put(1, leader.id, "k", "minority")
    assert pending is not None
    for _ in range(60):
        cluster.tick()
    assert all(sn.kv.get("k") != "minority" for sn in cluster.nodes.values())
    majority_leader = cluster.leader()
    assert majority_leader is not None and majority_leader.id in others[1:]
