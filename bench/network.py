"""Networking cost: container start with a bridge network vs ``--network none``, and TCP
throughput between two containers over a bridge vs two namespaces joined by a plain veth.

Usage (as root): .venv/bin/python bench/network.py [-n RUNS] [--megabytes MB]

Both starts go through the engine (create + start + wait of ``/bin/true``), interleaved in
one run so machine noise hits them alike; the difference is what networking adds (address
allocation in the store, veth pair, /etc files). Throughput uses the same Python sender and
receiver in both set-ups (sockets opened inside the namespaces), so the ratio compares the
paths: veth -> bridge -> veth against veth -> veth.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from shoaltest import make_busybox_rootfs  # noqa: E402

from shoal import open_engine  # noqa: E402
from shoal.config import parse_config  # noqa: E402
from shoal.plugins.bridge.netns import entered  # noqa: E402

IMAGE = "busybox:bench"
CHUNK = 256 * 1024


def config(data: Path, tag: str, octet: int) -> str:
    return f"""
[engine]
data_root = "{data}"
run_root = "{data}/run"
[load]
enable = ["sqlite", "local-membership", "namespaces", "cgroups", "images", "overlay", "bridge", "engine"]
[plugins.cgroups]
parent = "shoal-bench-{tag}"
[plugins.bridge]
bridge = "s{tag}b0"
default_subnet = "10.{octet}.0.0/24"
pools = ["10.{octet}.16.0/20:24"]
bridge_prefix = "s{tag}n"
veth_prefix = "s{tag}v"
table = "shoal_b{tag}"
remove_on_exit = true
"""


def stream(receiver_ns: str, sender_ns: str, address: str, megabytes: int) -> float:
    """Seconds to push ``megabytes`` MiB over one TCP connection between two namespaces."""
    with entered(receiver_ns):
        listener = socket.socket()
    with entered(sender_ns):
        sender = socket.socket()
    total = megabytes * 1024 * 1024
    with listener, sender:
        listener.bind((address, 5001))
        listener.listen(1)

        def receive() -> None:
            conn, _ = listener.accept()
            with conn:
                left = total
                while left > 0:
                    left -= len(conn.recv(CHUNK)) or left

        reader = threading.Thread(target=receive)
        reader.start()
        sender.connect((address, 5001))
        payload = b"\0" * CHUNK
        start = time.perf_counter()
        for _ in range(total // CHUNK):
            sender.sendall(payload)
        sender.shutdown(socket.SHUT_WR)
        reader.join()
        return time.perf_counter() - start


def plain_veth_pair(tag: str, octet: int) -> tuple[list[str], str]:
    """Two namespaces joined by a veth; their paths and the receiver's address."""
    names = [f"shoalbench{tag}a", f"shoalbench{tag}b"]
    for ns in names:
        subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", names[0], "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", names[1]], check=True)
    for i, ns in enumerate(names):
        subprocess.run(["ip", "-n", ns, "addr", "add", f"10.{octet}.250.{i + 1}/24", "dev", "eth0"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    return [f"/var/run/netns/{ns}" for ns in names], f"10.{octet}.250.1"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    parser.add_argument("--megabytes", type=int, default=1024)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    tag, octet = secrets.token_hex(2), random.randrange(200, 250)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_busybox_rootfs(root / "rootfs")
        async with open_engine(parse_config(config(root / "data", tag, octet))) as engine:
            await engine.slot("images").import_rootfs(str(root / "rootfs"), IMAGE, {"Cmd": ["sh"]})
            containers = engine.slot("containers")

            async def run(mode: str) -> float:
                start = time.perf_counter()
                created = await containers.create({"Image": IMAGE, "Cmd": ["/bin/true"], "HostConfig": {"NetworkMode": mode}})
                await containers.start(created["Id"])
                await containers.wait(created["Id"])
                elapsed = time.perf_counter() - start
                await containers.remove(created["Id"])
                return elapsed

            times: dict[str, list[float]] = {"bridge": [], "none": []}
            await run("bridge"), await run("none")  # warm-up
            for _ in range(args.runs):
                for mode in ("bridge", "none"):
                    times[mode].append(await run(mode))
            bridge, none = statistics.median(times["bridge"]), statistics.median(times["none"])
            print(f"\ncontainer create+start+wait of /bin/true, median of {args.runs} interleaved runs")
            print(f"{'network':<10} {'median ms':>10} {'min ms':>8}")
            for mode, values in times.items():
                print(f"{mode:<10} {statistics.median(values) * 1000:>10.2f} {min(values) * 1000:>8.2f}")
            print(f"networking adds {1000 * (bridge - none):.2f} ms (target: under 15 ms)")

            await engine.slot("network").create_network({"Name": "bench"})
            ids = []
            for name in ("bench-rx", "bench-tx"):
                created = await containers.create({"Image": IMAGE, "Cmd": ["sleep", "600"], "HostConfig": {"NetworkMode": "bench"}}, name)
                await containers.start(created["Id"])
                ids.append(created["Id"])
            try:
                info = [await containers.inspect(cid) for cid in ids]
                address = info[0]["NetworkSettings"]["Networks"]["bench"]["IPAddress"]
                paths = [f"/proc/{i['State']['Pid']}/ns/net" for i in info]
                over_bridge = await trio.to_thread.run_sync(stream, paths[0], paths[1], address, args.megabytes)
            finally:
                for cid in ids:
                    await containers.remove(cid, force=True)
                await engine.slot("network").remove_network("bench")
        plain_paths, plain_address = plain_veth_pair(tag, octet)
        try:
            over_veth = await trio.to_thread.run_sync(stream, plain_paths[0], plain_paths[1], plain_address, args.megabytes)
        finally:
            for path in plain_paths:
                subprocess.run(["ip", "netns", "del", Path(path).name], check=True)
        for controller in Path("/sys/fs/cgroup").iterdir():
            leftover = controller / f"shoal-bench-{tag}"
            if leftover.is_dir():
                leftover.rmdir()
    rate = lambda seconds: args.megabytes / seconds  # noqa: E731
    print(f"\nTCP stream of {args.megabytes} MiB")
    print(f"two containers over the bridge   {rate(over_bridge):>9.0f} MiB/s")
    print(f"two namespaces over a plain veth {rate(over_veth):>9.0f} MiB/s")
    print(f"ratio bridge / veth: {over_veth / over_bridge:.2f}")


if __name__ == "__main__":
    trio.run(main)
