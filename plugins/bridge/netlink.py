"""Links the bridge driver makes, over netlink (pyroute2's synchronous API).

Every function here blocks: callers run them in a worker thread (``trio.to_thread``).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .netns import entered


@dataclass(frozen=True)
class Plug:
    """One end-to-end veth wiring: host end on a bridge, container end in a namespace."""

    netns: str
    bridge: str
    host_if: str
    container_if: str
    address: str
    prefixlen: int
    gateway: str | None  # None: no default route through this interface
    mac: str
    mtu: int


def _sysctl(path: str, value: str) -> None:
    Path(path).write_text(value)


def ensure_bridge(name: str, gateway: str, prefixlen: int, mtu: int) -> None:
    """Create (or adopt) a bridge with the gateway address, up, accepting localhost DNAT."""
    with IPRoute() as ip:
        found = ip.link_lookup(ifname=name)
        if not found:
            try:
                ip.link("add", ifname=name, kind="bridge")
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
            found = ip.link_lookup(ifname=name)
        index = found[0]
        present = {(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ip.get_addr(index=index, family=2)}
        if (gateway, prefixlen) not in present:
            ip.addr("add", index=index, address=gateway, prefixlen=prefixlen)
        ip.link("set", index=index, mtu=mtu, state="up")
    # DNAT of 127.0.0.1:PORT to a container needs loopback-sourced packets routable here.
    _sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")


def enable_forwarding() -> None:
    """Let the host route between bridges and its uplinks (what any bridge network needs)."""
    if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "1":
        _sysctl("/proc/sys/net/ipv4/ip_forward", "1")


def delete_link(name: str) -> None:
    """Remove a link; one already gone is not an error."""
    with IPRoute() as ip:
        try:
            ip.link("del", ifname=name)
        except NetlinkError as exc:
            if exc.code not in (errno.ENODEV, errno.ENOENT):
                raise


def links_with_prefix(prefixes: tuple[str, ...]) -> list[str]:
    """Names of the host's links that start with one of ``prefixes``."""
    with IPRoute() as ip:
        names = [link.get("ifname") for link in ip.get_links()]
    return [n for n in names if n and n.startswith(prefixes)]


def plug(p: Plug) -> None:
    """Create the veth pair, its container end directly inside the namespace, and configure both.

    Nothing is left behind if this raises: deleting the host end removes the pair.
    """
    ns_fd = os.open(p.netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as ip:
            master = ip.link_lookup(ifname=p.bridge)[0]
            peer = {"ifname": p.container_if, "net_ns_fd": ns_fd, "address": p.mac, "mtu": p.mtu}
            # Enslaved and up from the start (flags/change: IFF_UP): one round trip less.
            ip.link("add", ifname=p.host_if, kind="veth", mtu=p.mtu, master=master, flags=1, change=1, peer=peer)
            try:
                # Hairpin: a container may reach its own published port through the host.
                _sysctl(f"/sys/class/net/{p.host_if}/brport/hairpin_mode", "1")
                with entered(p.netns), IPRoute() as inner:
                    index = inner.link_lookup(ifname=p.container_if)[0]
                    inner.addr("add", index=index, address=p.address, prefixlen=p.prefixlen)
                    inner.link("set", index=index, state="up")
                    lo = inner.link_lookup(ifname="lo")
                    if lo:
                        inner.link("set", index=lo[0], state="up")
                    if p.gateway is not None:
                        inner.route("replace", dst="0.0.0.0/0", gateway=p.gateway, oif=index)
            except BaseException:
                ip.link("del", ifname=p.host_if)
                raise
    finally:
        os.close(ns_fd)


def unplug(host_if: str) -> None:
    """Remove a container's veth pair by its host end (gone with its namespace is fine)."""
    delete_link(host_if)
