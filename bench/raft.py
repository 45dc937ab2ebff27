"""Raft store vs etcd: committed writes/s and commit latency on 3-node loopback clusters.

Both clusters fsync every commit and run on this machine's loopback, side by side in one run.
Clients spread over the three members (each forwards to its leader) and write new keys with a
100-byte value in a closed loop: shoal's through each manager's control socket (JSON lines over
a unix socket), etcd's through its HTTP/JSON gateway (``/v3/kv/put``, kept-alive connections).
The load generator is one trio process for both. Then the leader failover time: kill -9 of the
leader until the first write committed through another member. Last, this disk's own fdatasync
latency, probed alone before and after the runs: a host whose flushes stall now and then
stalls both clusters' commits, and that shows in their p99.

    .venv/bin/python bench/raft.py [--seconds 3] [--clients 1,16,256]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "raft"))

from raft_procs import Cluster, ControlError, free_ports  # noqa: E402

from shoal.plugins.raft import RaftSettings  # noqa: E402

VALUE = "v" * 100
#: The raft plugin's default settings: the bench's cluster runs with its default timeouts.
DEFAULTS = {f.name: f.default for f in dataclasses.fields(RaftSettings)}


# ----------------------------------------------------------------------------- clients


class RaftClient:
    """One connection to a manager's control socket."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def open(cls, path: Path) -> RaftClient:
        return cls(await trio.open_unix_socket(str(path)))

    async def put(self, key: str) -> None:
        request = {"op": "commit", "ops": [{"op": "create", "kind": "bench", "id": key, "data": {"v": VALUE}}]}
        await self.stream.send_all(json.dumps(request).encode() + b"\n")
        while b"\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                raise ConnectionError("control socket closed")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        if b'"error"' in line:
            raise RuntimeError(line.decode())


class EtcdClient:
    """One kept-alive HTTP/1.1 connection to an etcd member's JSON gateway."""

    def __init__(self, stream: trio.SocketStream, host: str) -> None:
        self.stream = stream
        self.host = host
        self.buffer = b""

    @classmethod
    async def open(cls, port: int) -> EtcdClient:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        stream.setsockopt(6, 1, 1)
        return cls(stream, f"127.0.0.1:{port}")

    async def post(self, path: str, body: dict[str, str]) -> dict[str, object]:
        payload = json.dumps(body).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        await self.stream.send_all(head.encode() + payload)
        while b"\r\n\r\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                raise ConnectionError("etcd closed the connection")
            self.buffer += data
        header, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length"))
        while len(rest) < length:
            rest += await self.stream.receive_some(65536)
        body_bytes, self.buffer = rest[:length], rest[length:]
        if not header.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(body_bytes.decode())
        return json.loads(body_bytes)  # type: ignore[no-any-return]

    async def put(self, key: str) -> None:
        b64 = base64.b64encode
        await self.post("/v3/kv/put", {"key": b64(key.encode()).decode(), "value": b64(VALUE.encode()).decode()})


# ----------------------------------------------------------------------------- load


async def run_load(open_client: Callable[[int], Awaitable[object]], clients: int, seconds: float, tag: str) -> tuple[float, list[float]]:
    """Closed-loop writers for ``seconds``: (writes per second, latencies)."""
    latencies: list[float] = []
    conns = [await open_client(n) for n in range(clients)]
    deadline = trio.current_time() + seconds

    async def writer(n: int) -> None:
        conn = conns[n]
        count = 0
        while trio.current_time() < deadline:
            start = time.perf_counter()
            await conn.put(f"{tag}-{n}-{count}")  # type: ignore[attr-defined]
            latencies.append(time.perf_counter() - start)
            count += 1

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for n in range(clients):
            nursery.start_soon(writer, n)
    elapsed = time.perf_counter() - started
    for conn in conns:
        await conn.stream.aclose()  # type: ignore[attr-defined]
    return len(latencies) / elapsed, latencies


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# ----------------------------------------------------------------------------- etcd cluster


class EtcdCluster:
    """Three etcd members on loopback (Debian's etcd-server)."""

    def __init__(self, root: Path) -> None:
        ports = free_ports(6)
        self.client_ports, peer_ports = ports[:3], ports[3:]
        initial = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, p in enumerate(peer_ports))
        self.procs: list[subprocess.Popen[bytes] | None] = []
        self.commands = []
        for i in range(3):
            self.commands.append([
                "etcd", "--name", f"e{i}", "--data-dir", str(root / f"e{i}"),
                "--listen-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer_ports[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_ports[i]}",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", "bench", "--log-level", "error",
            ])  # fmt: skip
        root.mkdir(parents=True, exist_ok=True)
        self.log = (root / "etcd.log").open("wb")

    def __enter__(self) -> EtcdCluster:
        self.procs = [subprocess.Popen(c, stdout=self.log, stderr=subprocess.STDOUT) for c in self.commands]
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        self.log.close()

    async def wait_ready(self) -> None:
        with trio.fail_after(30):
            while True:
                try:
                    client = await EtcdClient.open(self.client_ports[0])
                    await client.put("ready")
                    await client.stream.aclose()
                    return
                except (OSError, RuntimeError, ConnectionError):
                    await trio.sleep(0.1)

    async def leader_index(self) -> int:
        client = await EtcdClient.open(self.client_ports[0])
        status = await client.post("/v3/maintenance/status", {})
        await client.stream.aclose()
        leader = status["leader"]
        for i, port in enumerate(self.client_ports):
            c = await EtcdClient.open(port)
            member = (await c.post("/v3/maintenance/status", {}))["header"]["member_id"]  # type: ignore[index]
            await c.stream.aclose()
            if member == leader:
                return i
        raise RuntimeError("etcd reports no leader")


# ----------------------------------------------------------------------------- failover


#: Seconds one failover write may take before it is abandoned and tried again (etcd holds a
#: request up to its own 7 s timeout while it has no leader, rather than failing it).
ATTEMPT = 0.1


async def failover(kill: Callable[[], None], write: Callable[[], Awaitable[None]]) -> float:
    """Seconds from kill -9 of the leader to the first write committed through a survivor."""
    kill()
    start = time.perf_counter()
    while True:
        try:
            with trio.move_on_after(ATTEMPT) as attempt:
                await write()
            if not attempt.cancelled_caught:
                return time.perf_counter() - start
        except (OSError, RuntimeError, ConnectionError, ControlError):
            await trio.sleep(0.005)


async def main_async(args: argparse.Namespace, tmp: Path) -> None:
    levels = [int(c) for c in args.clients.split(",")]
    results: dict[tuple[str, int], tuple[float, list[float]]] = {}
    with Cluster(tmp / "shoal", 3, tls=not args.no_tls, request_timeout=10.0, tick_interval=DEFAULTS["tick_interval"]) as shoal, EtcdCluster(tmp / "etcd") as etcd:
        shoal.leader()
        await etcd.wait_ready()
        managers = list(shoal.managers.values())
        term_before = max(m.status()["term"] for m in managers)
        for clients in levels:
            results[("shoal", clients)] = await run_load(
                lambda n: RaftClient.open(managers[n % 3].socket), clients, args.seconds, f"s{clients}")
            results[("etcd", clients)] = await run_load(
                lambda n: EtcdClient.open(etcd.client_ports[n % 3]), clients, args.seconds, f"e{clients}")
        # Elections during the load runs: each one costs a term (a PreVote that fails costs none).
        elections = max(m.status()["term"] for m in managers) - term_before
        # Failover.
        leader = shoal.leader()
        survivor = next(m for m in managers if m is not leader)
        counter = iter(range(10**9))

        async def shoal_write() -> None:
            client = await RaftClient.open(survivor.socket)
            try:
                await client.put(f"failover-{next(counter)}")
            finally:
                await client.stream.aclose()

        shoal_failover = await failover(leader.kill, shoal_write)
        index = await etcd.leader_index()
        other = etcd.client_ports[(index + 1) % 3]

        async def etcd_write() -> None:
            client = await EtcdClient.open(other)
            try:
                await client.put(f"failover-{next(counter)}")
            finally:
                await client.stream.aclose()

        def kill_etcd() -> None:
            proc = etcd.procs[index]
            assert proc is not None
            proc.send_signal(signal.SIGKILL)
            proc.wait()

        etcd_failover = await failover(kill_etcd, etcd_write)

    print(f"\nCommitted writes, 3 members on loopback, fsync on, {args.seconds:g} s per run "
          f"(shoal peers over {'plain TCP' if args.no_tls else 'mutual TLS'}; etcd over plain HTTP)")  # fmt: skip
    print(f"{'clients':>8} {'':6} {'writes/s':>10} {'p50 ms':>8} {'p99 ms':>8}   {'shoal/etcd writes/s':>20}")
    for clients in levels:
        s_rate, s_lat = results[("shoal", clients)]
        e_rate, e_lat = results[("etcd", clients)]
        print(f"{clients:>8} {'shoal':6} {s_rate:>10.0f} {pct(s_lat, .5):>8.2f} {pct(s_lat, .99):>8.2f}   {s_rate / e_rate:>20.2f}")
        print(f"{'':>8} {'etcd':6} {e_rate:>10.0f} {pct(e_lat, .5):>8.2f} {pct(e_lat, .99):>8.2f}")
    print(f"\nshoal elections during the load runs: {elections}")
    print(f"Leader failover (kill -9 to first committed write, writes retried every {ATTEMPT * 1000:.0f} ms): "
          f"shoal {shoal_failover * 1000:.0f} ms, etcd {etcd_failover * 1000:.0f} ms "
          f"(default timeouts: shoal {DEFAULTS['tick_interval'] * 1000:.0f} ms ticks x {DEFAULTS['election_ticks']} ticks, "
          "etcd 100 ms heartbeat and 1 s election)")  # fmt: skip


def probe_fdatasync(directory: Path, seconds: float = 2.0) -> str:
    """This disk's fdatasync latency alone (p50, p99, max): a host whose flushes stall now and
    then stalls both clusters' commits, and shows in their p99."""
    path = directory / "fdatasync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    took: list[float] = []
    try:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            os.write(fd, b"x" * 512)
            started = time.perf_counter()
            os.fdatasync(fd)
            took.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return f"p50 {pct(took, .5):.2f} ms, p99 {pct(took, .99):.2f} ms, max {max(took) * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", default="1,16,256")
    parser.add_argument("--no-tls", action="store_true", help="shoal peers over plain TCP, like etcd here")
    args = parser.parse_args()
    if shutil.which("etcd") is None:
        sys.exit("bench/raft.py needs etcd: apt-get install -y etcd-server")
    with tempfile.TemporaryDirectory(prefix="shoal-bench-raft-") as tmp:
        before = probe_fdatasync(Path(tmp))
        trio.run(main_async, args, Path(tmp))
        after = probe_fdatasync(Path(tmp))
    print(f"fdatasync of 512 bytes on this disk, alone for 2 s: before the runs {before}; after them {after}")


if __name__ == "__main__":
    main()
