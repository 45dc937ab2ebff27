"""IP address management: subnets from pools, addresses within a subnet (pure logic).

The state these functions read (subnets in use, addresses held, the allocation cursor) is
kept in the store by the caller, so an address is never handed out twice, across restarts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from ipaddress import IPv4Address, IPv4Network

from shoal.errors import Conflict, InvalidArgument


def parse_subnet(text: str) -> IPv4Network:
    """A subnet in CIDR form; host bits set is an error (as Docker reports it)."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {text!r}: expected CIDR notation like 172.20.0.0/16") from None
    if not isinstance(net, IPv4Network):
        raise InvalidArgument(f"invalid subnet {text!r}: only IPv4 subnets are supported")
    if str(net) != text.strip() and ipaddress.ip_interface(text).ip != net.network_address:
        raise InvalidArgument(f"invalid subnet {text!r}: it should be {net}")
    if net.prefixlen > 30:
        raise InvalidArgument(f"invalid subnet {text!r}: too small for a gateway and a container (at most /30)")
    return net


def parse_address(text: str, what: str) -> IPv4Address:
    """An IPv4 address given by a client for ``what`` (a field name, for the error)."""
    try:
        return IPv4Address(text.strip())
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: expected an IPv4 address") from None


def check_overlap(subnet: IPv4Network, used: Iterable[tuple[str, IPv4Network]]) -> None:
    """Refuse a subnet that overlaps one already in use (``used``: network name, subnet)."""
    for name, other in used:
        if subnet.overlaps(other):
            raise Conflict(f"invalid pool request: Pool overlaps with other one on this address space ({other} of network {name})")


def pick_subnet(pools: Iterable[tuple[IPv4Network, int]], used: Collection[IPv4Network]) -> IPv4Network:
    """The first subnet of ``pools`` (base, size) that overlaps nothing in ``used``."""
    for base, size in pools:
        for candidate in base.subnets(new_prefix=size) if size > base.prefixlen else [base]:
            if not any(candidate.overlaps(u) for u in used):
                return candidate
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")


def parse_pools(specs: Iterable[str]) -> list[tuple[IPv4Network, int]]:
    """Pools written "BASE/PREFIX:SIZE" (``172.18.0.0/14:16``) or "BASE/PREFIX" (one subnet)."""
    pools = []
    for spec in specs:
        base, _, size = spec.partition(":")
        net = parse_subnet(base)
        pools.append((net, int(size) if size else net.prefixlen))
    return pools


def default_gateway(subnet: IPv4Network) -> IPv4Address:
    """Docker's choice: the first host address of the subnet."""
    return subnet.network_address + 1


def check_in_subnet(address: IPv4Address, subnet: IPv4Network, what: str) -> None:
    """Refuse an address outside the subnet, or its network or broadcast address."""
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"invalid {what} {address}: it is not a usable address of subnet {subnet}")


def allocate(subnet: IPv4Network, taken: Collection[str], cursor: int, requested: str | None = None) -> tuple[IPv4Address, int]:
    """An address for an endpoint, and the cursor to keep for the next allocation.

    ``taken`` holds the gateway and every live endpoint's address. Addresses are handed out
    round-robin from ``cursor`` so a just-released one is not reused at once (stale ARP
    entries in peers would still point at the old container).
    """
    if requested is not None:
        address = parse_address(requested, "IPv4 address")
        check_in_subnet(address, subnet, "IPv4 address")
        if str(address) in taken:
            raise Conflict(f"Address already in use: {address} is held by another endpoint of the network")
        return address, cursor
    first, last = int(subnet.network_address) + 1, int(subnet.broadcast_address) - 1
    span = last - first + 1
    start = cursor if first <= cursor <= last else first
    for step in range(span):
        candidate = first + (start - first + step) % span
        if str(IPv4Address(candidate)) not in taken:
            return IPv4Address(candidate), candidate + 1
    raise Conflict(f"no available IPv4 addresses on this network's address pools: {subnet} is full")


def mac_for(address: IPv4Address) -> str:
    """A locally administered MAC derived from the address (02:42 + the four octets, as Docker)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)
