"""Seeded fault-injection scenarios over a simulated cluster, with clients and a liveness check.

Replay one seed with ``python -m shoal.plugins.raft.scenario --nodes 5 --seed 123 --trace``.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

from .linearizability import check_kv_history
from .messages import Role
from .sim import Cluster, Faults, PendingOp


#: Election timeout of the simulated nodes, in ticks (heartbeats every 2).
ELECTION_TICK = 10


@dataclass
class SimResult:
    """What a passing scenario did: its length and the size of the checked client history."""

    seed: int
    size: int
    ticks: int
    writes: int
    reads: int


def _chaos_step(cluster: Cluster, rng: random.Random) -> None:
    """Maybe inject one fault: crashes (often of the leader), restarts, partitions, one-way cuts, heals."""
    ids = list(cluster.nodes)
    alive = [i for i in ids if cluster.nodes[i].alive]
    roll = rng.random()
    if roll < 0.015 and alive:
        cluster.crash(rng.choice(alive), torn=rng.random() < 0.5)
    elif roll < 0.03:
        lead = cluster.leader()
        if lead is not None:
            cluster.crash(lead.id, torn=rng.random() < 0.5)
    elif roll < 0.08:
        dead = [i for i in ids if not cluster.nodes[i].alive]
        if dead:
            cluster.restart(rng.choice(dead))
    elif roll < 0.095:
        shuffled = ids[:]
        rng.shuffle(shuffled)
        cut = rng.randint(1, len(ids) - 1)
        cluster.network.partition(set(shuffled[:cut]), set(shuffled[cut:]))
        cluster.log_event(f"partition {sorted(shuffled[:cut])} | {sorted(shuffled[cut:])}")
    elif roll < 0.105:
        lead = cluster.leader()
        if lead is not None:
            cluster.network.partition({lead.id}, set(ids) - {lead.id})
            cluster.log_event(f"isolate leader {lead.id}")
    elif roll < 0.115:
        # One-way faults: some links drop in one direction only.
        links = [(a, b) for a in ids for b in ids if a != b]
        cluster.network.blocked = set(rng.sample(links, rng.randint(1, len(ids))))
        cluster.log_event(f"block {sorted(cluster.network.blocked)}")
    elif roll < 0.135:
        cluster.network.heal()
        cluster.log_event("heal")


@dataclass
class _Client:
    target: int
    current: PendingOp | None = None
    deadline: int = 0


#: Ticks a client waits for an answer before giving up on an operation and starting another.
CLIENT_TIMEOUT = 30


def _client_step(cluster: Cluster, rng: random.Random, clients: dict[int, _Client], keys: list[str]) -> None:
    """Each idle client sometimes starts one operation, through its guess of the leader."""
    for number, client in clients.items():
        busy = client.current is not None and not client.current.done and cluster.now < client.deadline
        if busy or rng.random() > 0.3:
            continue
        sn = cluster.nodes[client.target]
        if sn.node is not None and sn.node.role is not Role.LEADER and sn.node.lead:
            client.target = sn.node.lead
        elif sn.node is None or sn.node.lead == 0:
            client.target = rng.choice(list(cluster.nodes))
        key = rng.choice(keys)
        if rng.random() < 0.5:
            client.current = cluster.put(number, client.target, key, f"c{number}-{cluster.now}")
        else:
            via = client.target if rng.random() < 0.7 else rng.choice(list(cluster.nodes))
            client.current = cluster.get(number, via, key)
        client.deadline = cluster.now + CLIENT_TIMEOUT


def run_simulation(seed: int, size: int, *, chaos_ticks: int = 150, liveness_ticks: int = 200,
                   trace: list[str] | None = None) -> SimResult:
    """Run one seeded scenario: chaos with clients, then healing and a liveness check.

    Raises ``InvariantViolation`` (or ``RaftError``) on a safety violation, and ``AssertionError``
    if no leader emerges or no write commits within ``liveness_ticks`` of healing, or if the
    client history is not linearizable.
    """
    rng = random.Random(seed ^ 0x5EED)
    faults = Faults(
        loss=rng.choice([0.0, 0.02, 0.1, 0.2]),
        duplicate=rng.choice([0.0, 0.05]),
        min_delay=1,
        max_delay=rng.randint(1, 4),
    )
    config = {
        "election_tick": ELECTION_TICK,
        "heartbeat_tick": 2,
        "max_entries_per_msg": rng.choice([1, 4, 64]),
        "max_inflight_msgs": rng.choice([1, 4, 64]),
        "max_bytes_per_msg": 4096,
        "max_entry_bytes": 1024,
        "read_mode": rng.choice(["safe", "safe", "lease"]),
    }
    cluster = Cluster(size, seed, config=config, faults=faults, snapshot_every=rng.choice([0, 5, 20]))
    cluster.trace = trace
    clients = {c: _Client(rng.randint(1, size)) for c in range(4)}
    keys = ["x", "y", "z"]
    churn = rng.random() < 0.3  # some seeds also replace voters while everything else goes on
    for _ in range(chaos_ticks):
        _chaos_step(cluster, rng)
        if churn and (cluster.replacing is not None or rng.random() < 0.02):
            cluster.replace_step()
        _client_step(cluster, rng, clients, keys)
        cluster.tick()

    # Heal everything; only reordering, duplication and delay remain.
    cluster.network.heal()
    cluster.network.faults.loss = 0.0
    for node_id in cluster.nodes:
        cluster.nodes[node_id].tear_next_ready = False
        cluster.restart(node_id)
    deadline = cluster.now + liveness_ticks
    committed = False
    while cluster.now < deadline and not committed:
        cluster.tick()
        lead = cluster.stable_leader()
        if lead is not None and not committed:
            marker = f"liveness-{seed}"
            if cluster.put(99, lead.id, "liveness", marker):
                start = cluster.now
                while cluster.now < min(deadline, start + 30):
                    cluster.tick()
                    if lead.kv.get("liveness") == marker:
                        committed = True
                        break
    if not committed:
        raise AssertionError(f"no write committed within {liveness_ticks} ticks of healing")
    for _ in range(5 * ELECTION_TICK):
        cluster.tick()  # let pending reads and writes finish
    history = cluster.finished_history()
    result = check_kv_history(history)
    if not result.ok:
        raise AssertionError(f"client history is not linearizable: {result.reason}")
    writes = sum(1 for op in history if op.kind == "put")
    return SimResult(seed, size, cluster.now, writes, len(history) - writes)


def replay_command(seed: int, size: int) -> str:
    """The shell command (run from the repository root) that replays one scenario with its trace."""
    return f".venv/bin/python -m shoal.plugins.raft.scenario --nodes {size} --seed {seed} --trace"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Replay one seeded Raft simulation.")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--trace", action="store_true", help="print the fault schedule")
    args = parser.parse_args(argv)
    trace: list[str] | None = [] if args.trace else None
    try:
        result = run_simulation(args.seed, args.nodes, trace=trace)
    finally:
        for line in trace or ():
            print(line)
    print(f"seed {result.seed}: {result.size} nodes, {result.ticks} ticks, "
          f"{result.writes} writes, {result.reads} reads: ok")


if __name__ == "__main__":
    main()
