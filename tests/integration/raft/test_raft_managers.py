"""Raft managers as real ``shoald`` processes on loopback, with mutual TLS between them."""

from __future__ import annotations

import math
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shoal.plugins.raft.linearizability import Operation, check_kv_history
from shoal.plugins.raft.network import FORWARD, HELLO, RAFT, frame

from raft_procs import Cluster, ControlError, Manager, put


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def shoal_raft_status(m: Manager) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shoal.cli", "raft", "status", "--socket", str(m.socket)],
                          capture_output=True, text=True, timeout=30)  # fmt: skip


def followers(cluster: Cluster, leader: Manager) -> list[Manager]:
    return [m for m in cluster.managers.values() if m is not leader and m.alive]


def role_of(m: Manager, node_id: int) -> str | None:
    return next((member["role"] for member in m.status()["members"] if member["id"] == node_id), None)


def all_ids(m: Manager, kind: str) -> list[str]:
    return [o["id"] for o in m.call({"op": "list", "kind": kind})]


def test_three_managers_leader_kill9_failover_and_full_restart(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        leader = cluster.leader()
        acked = []
        for n in range(20):
            via = list(cluster.managers.values())[n % 3]  # followers forward to the leader
            put(via, "thing", f"a{n}", {"n": n})
            acked.append(f"a{n}")
        leader.kill()
        killed = time.monotonic()
        survivor = followers(cluster, leader)[0]
        put(survivor, "thing", "after-failover", {})
        failover = time.monotonic() - killed
        acked.append("after-failover")
        new_leader = cluster.leader(exclude=(leader.id,))
        assert new_leader.id != leader.id
        assert failover < 5, f"writes resumed only {failover:.2f} s after the leader died"
        status = new_leader.status()
        assert status["term"] > 1 and status["quorum"]
        assert [m["connected"] for m in status["members"] if m["id"] == leader.id] == [False]

        # The old leader comes back as a follower and catches up.
        leader.start()
        leader.wait_ready()
        wait_for(lambda: sorted(all_ids(leader, "thing")) == sorted(acked), what="the old leader to catch up")

        # A full restart, every member at once: every acknowledged write is still there.
        for m in cluster.managers.values():
            m.stop()
        for m in cluster.managers.values():
            m.start()
        for m in cluster.managers.values():
            m.wait_ready()
        cluster.leader()
        for m in cluster.managers.values():
            assert sorted(all_ids(m, "thing")) == sorted(acked)
        assert cluster.managers[1].call({"op": "revision"}) == len(acked)


def test_a_new_manager_joins_catches_up_and_becomes_a_voter(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        leader = cluster.leader()
        for n in range(5):
            put(leader, "thing", f"old{n}", {})
        joiner = cluster.join(4)
        wait_for(lambda: role_of(leader, 4) == "voter", what="node 4 to be promoted to voter")
        put(joiner, "thing", "via-joiner", {})
        assert len(all_ids(joiner, "thing")) == 6
        status = joiner.status()
        assert status["quorum"] and [m["role"] for m in status["members"]] == ["voter"] * 4
        # Four voters need three: with the leader killed, the three others still commit.
        leader.kill()
        put(joiner, "thing", "after-kill", {})
        # The joined member restarts from its own data as a voter.
        joiner.stop()
        joiner.start()
        joiner.wait_ready()
        wait_for(lambda: "after-kill" in all_ids(joiner, "thing"), what="the joiner to serve after a restart")
        assert role_of(joiner, 4) == "voter"


def test_losing_quorum_stops_writes_and_healing_resumes_them(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, request_timeout=1.0) as cluster:
        leader = cluster.leader()
        put(leader, "thing", "before", {})
        stopped = followers(cluster, leader)
        for m in stopped:
            m.signal(signal.SIGSTOP)  # a partition: the leader is alone
        try:
            started = time.monotonic()
            with pytest.raises(ControlError) as info:
                put(leader, "thing", "during", {})
            assert info.value.kind == "NoQuorum"
            assert "no quorum" in str(info.value)
            assert time.monotonic() - started < 5
            with pytest.raises(ControlError, match="NoQuorum"):
                leader.call({"op": "get", "kind": "thing", "id": "before"})
            # The leader notices it lost its quorum and steps down.
            wait_for(lambda: leader.status()["state"] != "leader", what="the isolated leader to step down")
            assert leader.status()["quorum"] is False
            lost = shoal_raft_status(leader)
            assert lost.returncode == 3 and "Quorum:       LOST" in lost.stdout
        finally:
            for m in stopped:
                m.signal(signal.SIGCONT)
        cluster.leader()
        put(leader, "thing", "healed", {})
        held = shoal_raft_status(leader)
        assert held.returncode == 0, held.stderr
        assert "Quorum:       held" in held.stdout and "Commit index:" in held.stdout
        assert len([line for line in held.stdout.splitlines() if "127.0.0.1:" in line]) == 3
        ids = all_ids(stopped[0], "thing")
        assert "before" in ids and "healed" in ids


def test_five_managers_tolerate_two_failures_and_a_minority_cannot_commit(tmp_path: Path) -> None:
    with Cluster(tmp_path, 5, request_timeout=1.0, tls=False) as cluster:
        leader = cluster.leader()
        put(leader, "thing", "one", {})
        leader.kill()
        rest = followers(cluster, leader)
        second = cluster.leader(exclude=(leader.id,))
        rest[-1 if rest[-1] is not second else 0].kill()  # two of five gone: three still commit
        alive = [m for m in cluster.managers.values() if m.alive]
        assert len(alive) == 3
        put(alive[0], "thing", "two", {})
        # A third failure leaves a minority of two: no write can commit.
        minority = [m for m in alive if m is not second][:1] + [second]
        victim = next(m for m in alive if m not in minority)
        victim.signal(signal.SIGSTOP)
        try:
            with pytest.raises(ControlError, match="NoQuorum"):
                put(minority[0], "thing", "three", {})
        finally:
            victim.signal(signal.SIGCONT)
        cluster.leader()
        put(minority[0], "thing", "four", {})
        # "three" had no quorum; it was in the leader's log and may commit once one is back.
        assert set(all_ids(victim, "thing")) - {"three"} == {"four", "one", "two"}


def test_client_histories_across_a_leader_kill_are_linearizable(tmp_path: Path) -> None:
    keys = ["x", "y"]
    with Cluster(tmp_path, 3, tls=False) as cluster:
        leader = cluster.leader()
        for key in keys:
            leader.call({"op": "commit", "ops": [{"op": "create", "kind": "reg", "id": key, "data": {"v": None}}]})
        history: list[Operation] = []
        lock = threading.Lock()
        stop = threading.Event()
        members = list(cluster.managers.values())

        def client(number: int) -> None:
            counter = 0
            while not stop.is_set():
                m = members[number % len(members)]
                if not m.alive:
                    m = members[(number + 1) % len(members)] if members[(number + 1) % len(members)].alive else members[(number + 2) % len(members)]
                key = keys[counter % len(keys)]
                counter += 1
                try:
                    with m.client(timeout=10) as c:
                        if counter % 2:
                            call = time.monotonic()
                            obj = c.call({"op": "get", "kind": "reg", "id": key})
                            with lock:
                                history.append(Operation(number, key, "get", obj["data"]["v"], call, time.monotonic()))
                        else:
                            value = f"{number}-{counter}"
                            current = c.call({"op": "get", "kind": "reg", "id": key})
                            op = Operation(number, key, "put", value, time.monotonic())
                            try:
                                c.call({"op": "commit", "ops": [{"op": "update", "kind": "reg", "id": key,
                                                                 "data": {"v": value}, "version": current["version"]}]})  # fmt: skip
                                op.ret = time.monotonic()
                            except ControlError as exc:
                                if exc.kind == "Conflict":
                                    continue  # definitely not applied
                                op.ret = math.inf  # unknown outcome
                            with lock:
                                history.append(op)
                except (ControlError, OSError):
                    time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.8)
            leader.kill()
            time.sleep(1.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert len(history) > 50
        result = check_kv_history(history)
        assert result.ok, result.reason


def test_corrupted_wal_stops_the_member_with_a_clear_error(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, tls=False) as cluster:
        leader = cluster.leader()
        for n in range(10):
            put(leader, "thing", f"t{n}", {"pad": "x" * 200})
        victim = followers(cluster, leader)[0]
        victim.stop()
        wal_dir = victim.root / "data" / "plugins" / "raft" / "wal"
        (segment,) = sorted(wal_dir.iterdir())
        data = bytearray(segment.read_bytes())
        data[len(data) // 2] ^= 0x04
        segment.write_bytes(data)
        victim.start()
        assert victim.wait_exit() == 1
        assert f"corrupt Raft data in {segment} at offset" in victim.log
        assert segment.read_bytes() == bytes(data), "the damaged WAL is kept for inspection"
        # The other two still serve every write.
        assert len(all_ids(leader, "thing")) == 10


def test_data_of_another_cluster_is_refused(tmp_path: Path) -> None:
    with Cluster(tmp_path / "a", 3, tls=False, cluster_id="alpha") as alpha:
        put(alpha.leader(), "thing", "a", {})
        victim = alpha.managers[3]
        victim.stop()
        victim.config.write_text(victim.config.read_text().replace('cluster_id = "alpha"', 'cluster_id = "beta"'))
        victim.start()
        assert victim.wait_exit() == 1
        assert "holds Raft data of node 3 of cluster 'alpha', but this node is 3 of cluster 'beta'" in victim.log


def _raw_peer(address: str, node_id: int, cluster: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(frame(HELLO, struct.pack(">QH", node_id, len(cluster)) + cluster.encode()))
    return sock


def test_unknown_members_and_foreign_clusters_are_turned_away(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, tls=False) as cluster:
        leader = cluster.leader()
        before = leader.status()
        address = before["members"][leader.id - 1]["address"]
        for node_id, name in ((9, "itest"), (2, "other-cluster")):
            with _raw_peer(address, node_id, name) as sock:
                # A vote request from a stranger with a huge term: it must not depose the leader.
                sock.sendall(frame(RAFT, b"\x00" * 40) + frame(FORWARD, struct.pack(">Q", 1) + b"{}"))
                assert sock.recv(1) == b""  # closed on us
        assert "node 9 is not a member of cluster 'itest'" in leader.log
        assert "belongs to cluster 'other-cluster'" in leader.log
        st = leader.status()
        assert st["state"] == "leader" and st["term"] == before["term"]
        put(leader, "thing", "still-fine", {})


def test_oversized_proposal_is_refused_and_nothing_is_lost(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, tls=False, extra="max_entry_bytes = 65536") as cluster:
        leader = cluster.leader()
        put(leader, "thing", "small", {})
        follower = followers(cluster, leader)[0]
        for via in (leader, follower):
            with pytest.raises(ControlError, match="ProposalTooLarge.*exceeds the maximum Raft entry size of 65536"):
                put(via, "thing", "big", {"blob": "x" * 70000})
        put(follower, "thing", "after", {})
        assert all_ids(leader, "thing") == ["after", "small"]


