"""Bridge networks end to end: real links, nftables rules, DNS, published ports."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio

from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.plugins.bridge.netns import entered

from bridge_support import Harness, output, run_in

pytestmark = pytest.mark.root

SLEEP = "trap 'exit 0' TERM; sleep 60 & wait"


async def inspect(engine: object, cid: str) -> dict:
    return await engine.slot("containers").inspect(cid)  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_two_containers_exchange_tcp_and_udp_by_name(engine: object) -> None:
    network = engine.slot("network")  # type: ignore[attr-defined]
    await network.create_network({"Name": "app"})
    server = await run_in(engine, "srv", "nc -l -p 7000", network="app")
    client = await run_in(engine, "cli", "for i in $(seq 50); do echo hello | nc srv 7000 && break; sleep 0.1; done",
                          network="app")  # fmt: skip
    assert (await output(engine, client))[0] == 0
    assert await output(engine, server) == (0, "hello\n")

    # UDP by name: a process in one container (busybox tftp) resolves the other's name through
    # the embedded DNS and sends it a datagram; the test receives it in the other's namespace.
    receiver = await run_in(engine, "udp-srv", SLEEP, network="app")
    address = (await inspect(engine, receiver))["NetworkSettings"]["Networks"]["app"]["IPAddress"]
    rx_pid = (await inspect(engine, receiver))["State"]["Pid"]
    with entered(f"/proc/{rx_pid}/ns/net"):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx:
        rx.bind((address, 7001))
        rx.settimeout(10)
        sender = await run_in(engine, "udp-cli", "tftp -g -r hello-by-name udp-srv 7001", network="app")
        data, source = await trio.to_thread.run_sync(rx.recvfrom, 512)
    assert b"hello-by-name" in data
    assert source[0] == (await inspect(engine, sender))["NetworkSettings"]["Networks"]["app"]["IPAddress"]


async def test_networks_are_isolated(engine: object) -> None:
    network = engine.slot("network")  # type: ignore[attr-defined]
    await network.create_network({"Name": "left"})
    await network.create_network({"Name": "right"})
    target = await run_in(engine, "target", SLEEP, network="left")
    address = (await inspect(engine, target))["NetworkSettings"]["Networks"]["left"]["IPAddress"]
    same = await run_in(engine, "same", f"ping -c 1 -W 2 {address}", network="left")
    other = await run_in(engine, "other", f"ping -c 1 -W 1 {address}; nslookup target", network="right")
    assert (await output(engine, same))[0] == 0
    code, text = await output(engine, other)
    assert "1 packets received" not in text and "0 packets received" in text
    assert code != 0  # nslookup: "target" is not a name on this network


async def test_published_port_from_host_loopback_and_from_another_container(engine: object) -> None:
    port, local_port = free_port(), free_port()
    network = engine.slot("network")  # type: ignore[attr-defined]
    await network.create_network({"Name": "web"})
    server = await run_in(engine, "web1", "nc -l -p 80; nc -l -p 80", network="web",
                          PortBindings={"80/tcp": [{"HostPort": str(port)}, {"HostIp": "127.0.0.1", "HostPort": str(local_port)}]})  # fmt: skip
    ports = (await inspect(engine, server))["NetworkSettings"]["Ports"]
    assert {"HostIp": "127.0.0.1", "HostPort": str(local_port)} in ports["80/tcp"]

    def send(target: int) -> None:
        for _ in range(50):
            try:
                with socket.create_connection(("127.0.0.1", target), timeout=2) as conn:
                    conn.sendall(b"from-host\n")
                    return
            except ConnectionRefusedError:
                import time

                time.sleep(0.1)
        raise AssertionError("published port never answered")

    await trio.to_thread.run_sync(send, local_port)
    # The first nc must have taken its message before the second connection is made.
    containers = engine.slot("containers")  # type: ignore[attr-defined]
    with trio.fail_after(10):
        while b"from-host" not in b"".join([d async for _, d in containers.logs(server)]):
            await trio.sleep(0.05)
    gateway = (await inspect(engine, server))["NetworkSettings"]["Networks"]["web"]["Gateway"]
    client = await run_in(engine, "peer", f"for i in $(seq 50); do echo from-peer | nc {gateway} {port} && break; sleep 0.1; done")
    assert (await output(engine, client))[0] == 0
    assert await output(engine, server) == (0, "from-host\nfrom-peer\n")


async def test_taken_port_is_refused_and_nothing_is_half_made(engine: object, harness: Harness) -> None:
    port = free_port()
    first = await run_in(engine, "p1", SLEEP, PortBindings={"80/tcp": [{"HostPort": str(port)}]})
    containers = engine.slot("containers")  # type: ignore[attr-defined]
    second = await containers.create({"Image": "busybox:test", "Cmd": ["sh", "-c", SLEEP],
                                      "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": str(port)}]}}})  # fmt: skip
    def links() -> list[str]:  # the ready spares come and go on their own
        return [n for n in harness.names.links() if not n.startswith(harness.names.spare_prefix)]

    before = links()
    with pytest.raises(Conflict, match=f"0.0.0.0:{port} failed: port is already allocated"):
        await containers.start(second["Id"])
    assert links() == before
    assert (await inspect(engine, second["Id"]))["State"]["Status"] == "created"
    with socket.socket() as s, pytest.raises(OSError):
        s.bind(("0.0.0.0", port))  # still held for the first container
    await containers.remove(first, force=True)


async def test_network_none_has_only_lo(engine: object) -> None:
    cid = await run_in(engine, "alone", "ip -o link", network="none")
    code, text = await output(engine, cid)
    assert code == 0 and [line.split(":")[1].strip() for line in text.splitlines()] == ["lo"]


async def test_bad_input(engine: object) -> None:
    network = engine.slot("network")  # type: ignore[attr-defined]
    containers = engine.slot("containers")  # type: ignore[attr-defined]
    octet = engine.slot("network").settings.default_subnet.split(".")[1]  # type: ignore[attr-defined]
    await network.create_network({"Name": "fixed", "IPAM": {"Config": [{"Subnet": f"10.{octet}.100.0/24"}]}})
    with pytest.raises(Conflict, match="overlaps"):
        await network.create_network({"Name": "clash", "IPAM": {"Config": [{"Subnet": f"10.{octet}.100.128/25"}]}})
    with pytest.raises(InvalidArgument, match="not a usable address"):
        await network.create_network({"Name": "gw", "IPAM": {"Config": [{"Subnet": f"10.{octet}.101.0/24", "Gateway": "10.9.9.9"}]}})
    nowhere = await containers.create({"Image": "busybox:test", "HostConfig": {"NetworkMode": "nowhere"}})
    with pytest.raises(NotFound, match="network nowhere not found"):
        await containers.start(nowhere["Id"])
    outside = await containers.create({"Image": "busybox:test", "HostConfig": {"NetworkMode": "fixed"},
                                       "NetworkingConfig": {"EndpointsConfig": {"fixed": {"IPAMConfig": {"IPv4Address": "10.9.9.9"}}}}})  # fmt: skip
    with pytest.raises(InvalidArgument, match="not a usable address"):
        await containers.start(outside["Id"])
    assert (await network.inspect_network("fixed"))["Containers"] == {}
    await run_in(engine, "member", SLEEP, network="fixed")
    with pytest.raises(Conflict, match="active endpoints"):
        await network.remove_network("fixed")
    assert [n["Name"] for n in await network.list_networks({"name": ["clash", "gw"]})] == []


async def test_addresses_are_never_reused_while_live_across_restart(harness: Harness) -> None:
    async with harness.open() as engine:
        network = engine.slot("network")  # type: ignore[attr-defined]
        await network.create_network({"Name": "keep"})
        first = await run_in(engine, "first", SLEEP, network="keep")
        address = (await inspect(engine, first))["NetworkSettings"]["Networks"]["keep"]["IPAddress"]
        fixed = await engine.slot("containers").create({"Image": "busybox:test", "Cmd": ["true"],  # type: ignore[attr-defined]
            "HostConfig": {"NetworkMode": "keep"},
            "NetworkingConfig": {"EndpointsConfig": {"keep": {"IPAMConfig": {"IPv4Address": address}}}}})  # fmt: skip
        with pytest.raises(Conflict, match="already in use"):
            await engine.slot("containers").start(fixed["Id"])  # type: ignore[attr-defined]
    async with harness.open() as engine:  # the first container lived on without the daemon
        network = engine.slot("network")  # type: ignore[attr-defined]
        assert first in (await network.inspect_network("keep"))["Containers"]
        second = await run_in(engine, "second", SLEEP, network="keep")
        assert (await inspect(engine, second))["NetworkSettings"]["Networks"]["keep"]["IPAddress"] != address
        # The first one still answers by name after the restart (its DNS socket was re-made).
        probe = await run_in(engine, "probe", "nslookup first", network="keep")
        code, text = await output(engine, probe)
        assert code == 0 and f"Address: {address}" in text


@contextmanager
def remote_host(tag: str, octet: int) -> Iterator[tuple[str, str]]:
    """A "remote" host: its own namespace behind a veth from the host (address, netns path)."""
    ns, link = f"shoalrem{tag}", f"s{tag}x0"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns], check=True)
        subprocess.run(["ip", "addr", "add", f"10.{octet}.250.1/30", "dev", link], check=True)
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", f"10.{octet}.250.2/30", "dev", "eth0"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
        yield f"10.{octet}.250.2", f"/var/run/netns/{ns}"
    finally:
        subprocess.run(["ip", "link", "del", link], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], check=True)


async def test_outbound_nat_reaches_a_remote_host(engine: object, harness: Harness) -> None:
    with remote_host(secrets.token_hex(2), harness.names.octet) as (address, netns):
        with entered(netns):
            listener = socket.socket()
        with listener:
            listener.bind((address, 9000))
            listener.listen()
            listener.settimeout(10)
            cid = await run_in(engine, "outbound", f"echo ping | nc {address} 9000")
            conn, peer = await trio.to_thread.run_sync(listener.accept)
            with conn:
                assert conn.recv(10) == b"ping\n"
            assert (await output(engine, cid))[0] == 0
    assert peer[0] == f"10.{harness.names.octet}.250.1"  # masqueraded to the host's address


async def test_a_crash_leaves_no_link_or_rule_after_the_next_start(harness: Harness) -> None:
    names = harness.names
    async with harness.open() as engine:
        network = engine.slot("network")  # type: ignore[attr-defined]
        await network.create_network({"Name": "doomed"})
        cid = await run_in(engine, "victim", SLEEP, network="doomed", PortBindings={"80/tcp": [{"HostPort": str(free_port())}]})
        pid = (await inspect(engine, cid))["State"]["Pid"]
    # While the daemon is away: the container dies, and a half-made veth is left over.
    import signal

    os.kill(pid, signal.SIGKILL)
    subprocess.run(["ip", "link", "add", f"{names.veth_prefix}dead", "type", "veth", "peer", "name", f"{names.veth_prefix}deap"], check=True)
    async with harness.open() as engine:
        network = engine.slot("network")  # type: ignore[attr-defined]
        for _ in range(100):
            if not (await network.inspect_network("doomed"))["Containers"]:
                break
            await trio.sleep(0.05)
        assert (await network.inspect_network("doomed"))["Containers"] == {}
        leftover = [n for n in names.links() if n.startswith(names.veth_prefix)]
        assert leftover == []
        rules = subprocess.run(["nft", "list", "table", "ip", names.table], capture_output=True, text=True, check=True).stdout
        assert "dnat to" not in rules


async def test_containers_join_ready_namespaces_and_all_goes_with_the_engine(harness: Harness) -> None:
    names = harness.names
    async with harness.open() as engine:
        network = engine.slot("network")  # type: ignore[attr-defined]
        for _ in range(200):  # the pool fills in the background
            if len([n for n in names.links() if n.startswith(names.spare_prefix)]) == network.settings.pool_size:
                break
            await trio.sleep(0.01)
        spares = [n for n in names.links() if n.startswith(names.spare_prefix)]
        assert len(spares) == network.settings.pool_size > 0
        await network.create_network({"Name": "kept"})
        cid = await run_in(engine, "pooled", "ip -o addr show eth0; ip route; ip -o link show eth0; sleep 1")
        settings = dict((await inspect(engine, cid))["NetworkSettings"])  # the run's, not updated later
        # One spare was taken: its host end now carries the endpoint's name.
        assert len([n for n in spares if n not in names.links()]) == 1
        code, text = await output(engine, cid)
        assert code == 0
        assert f"inet {settings['IPAddress']}/{settings['IPPrefixLen']}" in text
        assert f"default via {settings['Gateway']} dev eth0" in text
        assert settings["MacAddress"] in text
    # Nothing is left once the engine closes with no container: no spare, bridge or table.
    assert names.links() == [] and not names.table_exists()
    async with harness.open() as engine:  # the user-defined network comes back with its bridge
        assert (await engine.slot("network").inspect_network("kept"))["Name"] == "kept"  # type: ignore[attr-defined]
        assert names.bridge_prefix in " ".join(names.links())


def test_spares_go_with_a_crashed_daemon() -> None:
    prefix = f"s{secrets.token_hex(2)}c"
    script = (
        "import sys; from shoal.plugins.bridge import netlink\n"
        "host = netlink.RouteSocket()\n"
        f"spares = [netlink.make_spare(host, '{prefix}' + str(i), 1500) for i in range(3)]\n"
        "print('ready', flush=True); sys.stdin.read()\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as daemon:
        try:
            assert daemon.stdout is not None and daemon.stdout.readline() == "ready\n"
            assert all(os.path.exists(f"/sys/class/net/{prefix}{i}") for i in range(3))
        finally:
            daemon.kill()
    deadline = time.monotonic() + 5
    while any(os.path.exists(f"/sys/class/net/{prefix}{i}") for i in range(3)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(os.path.exists(f"/sys/class/net/{prefix}{i}") for i in range(3))


async def test_stats_count_the_container_network_traffic(engine: object) -> None:
    network = engine.slot("network")  # type: ignore[attr-defined]
    await network.create_network({"Name": "counted"})
    await run_in(engine, "target", SLEEP, network="counted")
    pinger = await run_in(engine, "pinger", "ping -c 3 -i 0.2 target >/dev/null; sleep 100", network="counted")
    containers = engine.slot("containers")  # type: ignore[attr-defined]
    with trio.fail_after(10):
        while (eth0 := (await containers.stats(pinger))["networks"].get("eth0", {})).get("tx_packets", 0) < 3:
            await trio.sleep(0.1)
    assert eth0["rx_packets"] >= 3 and eth0["tx_bytes"] > 0
    assert "lo" not in (await containers.stats(pinger))["networks"]
