"""shoal's nftables table: outbound NAT, published ports, isolation between networks.

The whole table is rendered from the stored state and replaced in one ``nft -f``
transaction, so the kernel never holds a half-updated rule set, a crashed daemon's rules are
simply replaced at the next start, and removing the table removes everything shoal added.

Localhost access to published ports: the ``output`` chain DNATs locally generated packets
too, each bridge has ``route_localnet`` set so a packet from 127.0.0.1 may be routed to it,
and such packets are masqueraded to the gateway address on the way out, so the container
answers to an address it can reach. Hairpin (a container reaching a published port, its own
included) is the same DNAT from ``prerouting`` plus a masquerade of DNATed traffic that
leaves through the bridge it came in on. No userland proxy process is involved.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

import trio

from shoal.errors import ShoalError


@dataclass(frozen=True)
class BridgeRules:
    """What the rules need to know about one network."""

    bridge: str
    subnet: str
    internal: bool = False


@dataclass(frozen=True)
class DnatRule:
    """One published port."""

    proto: str
    host_ip: str  # "" means every local address
    host_port: int
    address: str
    port: int


def render(table: str, bridges: Iterable[BridgeRules], dnats: Iterable[DnatRule]) -> str:
    """The ``nft -f`` script replacing table ``ip <table>`` with the given state."""
    bridges = sorted(bridges, key=lambda b: b.bridge)
    names = [b.bridge for b in bridges]
    lines = [
        f"add table ip {table}",
        f"delete table ip {table}",
        f"table ip {table} {{",
        "  chain ports {",
    ]
    for d in sorted(dnats, key=lambda d: (d.proto, d.host_port, d.host_ip)):
        match = f"ip daddr {d.host_ip} " if d.host_ip else ""
        lines.append(f"    {match}{d.proto} dport {d.host_port} dnat to {d.address}:{d.port}")
    lines += [
        "  }",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        "    fib daddr type local jump ports",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        "    fib daddr type local jump ports",
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
    ]
    for b in bridges:
        q = f'"{b.bridge}"'
        lines.append(f"    oifname {q} ip saddr 127.0.0.0/8 masquerade")
        lines.append(f"    oifname {q} iifname {q} ct status dnat masquerade")
        if not b.internal:
            lines.append(f"    ip saddr {b.subnet} oifname != {q} masquerade")
    lines += [
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
        "    ct status dnat accept",  # published ports are reachable from every network
    ]
    for b in bridges:
        q = f'"{b.bridge}"'
        others = [n for n in names if n != b.bridge]
        if b.internal:
            lines.append(f"    iifname {q} oifname != {q} drop")
            lines.append(f"    oifname {q} iifname != {q} drop")
        elif others:
            targets = ", ".join(f'"{n}"' for n in others)
            lines.append(f"    iifname {q} oifname {{ {targets} }} drop")
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def _nft(script: str) -> None:
    result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if result.returncode != 0:
        raise ShoalError(f"nft refused shoal's rules: {result.stderr.strip()}")


async def apply(table: str, bridges: Iterable[BridgeRules], dnats: Iterable[DnatRule]) -> None:
    """Replace shoal's table with the rules for this state, atomically."""
    await trio.to_thread.run_sync(_nft, render(table, list(bridges), list(dnats)))


async def remove(table: str) -> None:
    """Delete shoal's table (and with it every rule shoal made)."""
    await trio.to_thread.run_sync(_nft, f"add table ip {table}\ndelete table ip {table}\n")
