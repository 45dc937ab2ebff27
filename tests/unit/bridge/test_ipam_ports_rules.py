"""Pure logic of the bridge driver: IPAM, port requests, the nftables script, DNS packets."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv4Network

import pytest

from shoal.errors import Conflict, InvalidArgument
from shoal.plugins.bridge import dns, ipam, ports, rules


def test_subnets_come_from_pools_without_overlap() -> None:
    pools = ipam.parse_pools(["172.18.0.0/16", "172.20.0.0/14:16"])
    used = [IPv4Network("172.18.0.0/16"), IPv4Network("172.20.0.0/16")]
    assert ipam.pick_subnet(pools, used) == IPv4Network("172.21.0.0/16")
    with pytest.raises(Conflict, match="overlaps"):
        ipam.check_overlap(IPv4Network("172.18.5.0/24"), [("a", IPv4Network("172.18.0.0/16"))])
    with pytest.raises(Conflict, match="could not find"):
        ipam.pick_subnet(ipam.parse_pools(["10.0.0.0/24"]), [IPv4Network("10.0.0.0/8")])


@pytest.mark.parametrize("text", ["nonsense", "10.0.0.0/31", "fd00::/64", "10.0.0.5/24"])
def test_bad_subnets_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        ipam.parse_subnet(text)


def test_addresses_are_handed_out_round_robin_and_never_twice() -> None:
    subnet = IPv4Network("10.1.0.0/29")  # .1 gateway, .2-.6 usable
    taken = {"10.1.0.1"}
    first, cursor = ipam.allocate(subnet, taken, 0)
    assert first == IPv4Address("10.1.0.2")
    taken.add(str(first))
    second, cursor = ipam.allocate(subnet, taken, cursor)
    assert second == IPv4Address("10.1.0.3")
    taken.add(str(second))
    taken.discard(str(first))  # released: not reused before the others
    third, cursor = ipam.allocate(subnet, taken, cursor)
    assert third == IPv4Address("10.1.0.4")
    taken |= {"10.1.0.4", "10.1.0.5", "10.1.0.6"}
    fourth, _ = ipam.allocate(subnet, taken, cursor)
    assert fourth == IPv4Address("10.1.0.2")  # wrapped around to the free one
    with pytest.raises(Conflict, match="full"):
        ipam.allocate(subnet, taken | {"10.1.0.2"}, cursor)


def test_requested_addresses_are_checked() -> None:
    subnet = IPv4Network("10.1.0.0/24")
    assert ipam.allocate(subnet, {"10.1.0.1"}, 0, "10.1.0.77")[0] == IPv4Address("10.1.0.77")
    with pytest.raises(Conflict, match="already in use"):
        ipam.allocate(subnet, {"10.1.0.1", "10.1.0.77"}, 0, "10.1.0.77")
    for outside in ("10.2.0.5", "10.1.0.0", "10.1.0.255"):
        with pytest.raises(InvalidArgument, match="not a usable address"):
            ipam.allocate(subnet, set(), 0, outside)
    assert ipam.mac_for(IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"


def test_port_requests_from_bindings_and_publish_all() -> None:
    wanted = ports.requests({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": [{"HostPort": "5000-5010"}]},
                            {"80/tcp": {}, "443/tcp": {}}, publish_all=True)  # fmt: skip
    assert wanted == [
        ports.PortRequest("tcp", 80, "127.0.0.1", 8080, 8080),
        ports.PortRequest("udp", 53, "", 5000, 5010),
        ports.PortRequest("tcp", 443, "", 0, 0),
    ]
    for bad in ({"80/sctp": [{}]}, {"x/tcp": [{}]}, {"80": [{"HostPort": "70000"}]}, {"80": [{"HostIp": "::1"}]}):
        with pytest.raises(InvalidArgument):
            ports.requests(bad, None, False)


def test_port_choice_refuses_clashes_and_holds_nothing_on_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    taken = [("tcp", "0.0.0.0", port)]
    with pytest.raises(Conflict, match=f"127.0.0.1:{port} failed: port is already allocated"):
        ports.choose([ports.PortRequest("tcp", 80, "127.0.0.1", port, port)], taken, (port, port))
    chosen, held = ports.choose([ports.PortRequest("udp", 53, "127.0.0.1", port, port)], taken, (port, port))
    try:
        assert chosen == [ports.PortBinding("udp", 53, "127.0.0.1", port)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))
    finally:
        for sock in held:
            sock.close()


def test_rules_render_nat_ports_and_isolation() -> None:
    script = rules.render(
        "t", [rules.BridgeRules("b1", "10.1.0.0/24"), rules.BridgeRules("b2", "10.2.0.0/24", internal=True)],
        [rules.DnatRule("tcp", "127.0.0.1", 8080, "10.1.0.2", 80)],
    )
    assert script.startswith("add table ip t\ndelete table ip t\ntable ip t {")
    assert "ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.1.0.2:80" in script
    assert 'ip saddr 10.1.0.0/24 oifname != "b1" masquerade' in script
    assert "10.2.0.0/24 oifname" not in script  # internal: no outbound NAT
    assert 'iifname "b1" oifname { "b2" } drop' in script


def _query(name: str, qtype: int = dns.TYPE_A) -> bytes:
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack("!HH", qtype, 1)
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + question


async def test_dns_answers_known_names_and_forwards_others() -> None:
    forwarded = []

    def resolve(container: str, name: str) -> list[str] | None:
        return ["10.1.0.2", "10.1.0.3"] if (container, name) == ("c1", "web") else None

    server = dns.DnsServer(resolve, lambda c: forwarded.append(c) or [])

    reply = await server.respond("c1", _query("Web"))
    assert reply is not None
    qid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (qid, flags & 0x800F, qd, an) == (0x1234, 0x8000, 1, 2)
    assert socket.inet_aton("10.1.0.3") in reply
    empty = await server.respond("c1", _query("web", qtype=28))  # AAAA of our name: no error, no answer
    assert empty is not None and struct.unpack("!H", empty[6:8])[0] == 0 and struct.unpack("!H", empty[2:4])[0] & 0xF == 0
    failed = await server.respond("c1", _query("example.org"))
    assert forwarded == ["c1"] and failed is not None and struct.unpack("!H", failed[2:4])[0] & 0xF == dns.SERVFAIL
    assert await server.respond("c1", b"\x00") is None
