"""Links the bridge driver makes, over netlink.

Set-up and clean-up at start use pyroute2's synchronous API. The per-container path (a veth
pair, its address and route) builds pyroute2's messages but sends them itself, several in one
write on a long-lived socket: pyroute2's request round trip costs about half a millisecond of
Python each, the kernel's work a few microseconds.

Every function here blocks: callers run them in a worker thread (``trio.to_thread``).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NLMSG_ERROR, nlmsg
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from .netns import created, entered

NETLINK_ROUTE = 0
#: The loopback device is always the first link of a network namespace.
LOOPBACK_INDEX = 1
_IFF_UP = 1
_HEADER = struct.Struct("=IHHII")
_ERRNO = struct.Struct("=i")


class RouteSocket:
    """A rtnetlink socket in the namespace of the thread that opened it.

    ``send`` writes a batch of requests at once and waits for every acknowledgement; the
    kernel handles them in order. Safe to share between threads (one batch at a time).
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0
        self._lock = threading.Lock()

    def __enter__(self) -> RouteSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def send(self, requests: Sequence[nlmsg]) -> None:
        """Send ``requests``; raise ``NetlinkError`` for the first one the kernel refused."""
        with self._lock:
            data = bytearray()
            pending = set()
            for msg in requests:
                self._seq += 1
                msg["header"]["sequence_number"] = self._seq
                msg["header"]["flags"] |= NLM_F_REQUEST | NLM_F_ACK
                msg.encode()
                data += msg.data
                pending.add(self._seq)
            self._sock.send(data)
            failures: dict[int, int] = {}
            while pending:
                chunk = self._sock.recv(65536)
                offset = 0
                while offset + _HEADER.size <= len(chunk):
                    length, kind, _flags, seq, _pid = _HEADER.unpack_from(chunk, offset)
                    if kind == NLMSG_ERROR and seq in pending:
                        pending.discard(seq)
                        code = -_ERRNO.unpack_from(chunk, offset + _HEADER.size)[0]
                        if code:
                            failures[seq] = code
                    offset += max((length + 3) & ~3, _HEADER.size)
        if failures:
            code = failures[min(failures)]
            raise NetlinkError(code, os.strerror(code))


def _message(msg: nlmsg, kind: int, request_flags: int, fields: dict[str, Any]) -> nlmsg:
    for key, value in fields.items():
        msg[key] = value
    msg["header"]["type"] = kind
    msg["header"]["flags"] = request_flags
    return msg


def _veth(name: str, mtu: int, peer: list[tuple[str, Any]], *, master: int | None = None) -> nlmsg:
    """Create a veth pair; with ``master`` the new end is enslaved and up at once."""
    attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name), ("IFLA_MTU", mtu)]
    if master is not None:
        attrs.append(("IFLA_MASTER", master))
    info = {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer})]})]}
    attrs.append(("IFLA_LINKINFO", info))
    up = _IFF_UP if master is not None else 0
    return _message(ifinfmsg(), RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, {"family": 0, "flags": up, "change": up, "attrs": attrs})


def _set_link(index: int, *, up: bool, **attrs: Any) -> nlmsg:
    """Change a link: IFLA_* attributes given by their short names (``mtu=``, ``master=``...)."""
    pairs = [(f"IFLA_{key.upper()}", value) for key, value in attrs.items()]
    fields = {"family": 0, "index": index, "flags": _IFF_UP if up else 0, "change": _IFF_UP, "attrs": pairs}
    return _message(ifinfmsg(), RTM_NEWLINK, 0, fields)


def _del_link(name: str) -> nlmsg:
    return _message(ifinfmsg(), RTM_DELLINK, 0, {"family": 0, "attrs": [("IFLA_IFNAME", name)]})


def _add_address(index: int, address: str, prefixlen: int) -> nlmsg:
    attrs = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    fields = {"family": socket.AF_INET, "prefixlen": prefixlen, "index": index, "attrs": attrs}
    return _message(ifaddrmsg(), RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, fields)


def _default_route(index: int, gateway: str) -> nlmsg:
    # main table, proto static, scope universe, unicast
    attrs = [("RTA_GATEWAY", gateway), ("RTA_OIF", index)]
    fields = {"family": socket.AF_INET, "dst_len": 0, "table": 254, "proto": 4, "scope": 0, "type": 1, "attrs": attrs}
    return _message(rtmsg(), RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, fields)


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


def enable_forwarding() -> bool:
    """Let the host route between bridges and its uplinks (what any bridge network needs).

    Returns whether it was off, so that whoever turned it on can turn it off again.
    """
    if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "1":
        _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
        return True
    return False


def disable_forwarding() -> None:
    _sysctl("/proc/sys/net/ipv4/ip_forward", "0")


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


def plug(p: Plug, host: RouteSocket) -> None:
    """Create the veth pair, its container end directly inside the namespace, and configure both.

    Two batches of requests: one on ``host`` (the daemon's namespace), one on a socket
    opened inside the container's. Nothing is left behind if this raises: deleting the host
    end removes the pair.
    """
    ns_fd = os.open(p.netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        master = socket.if_nametoindex(p.bridge)
        peer = [("IFLA_IFNAME", p.container_if), ("IFLA_NET_NS_FD", ns_fd), ("IFLA_ADDRESS", p.mac), ("IFLA_MTU", p.mtu)]
        # Enslaved and up from the start: the kernel does it all in one request.
        host.send([_veth(p.host_if, p.mtu, peer, master=master)])
        try:
            # Hairpin: a container may reach its own published port through the host.
            _sysctl(f"/sys/class/net/{p.host_if}/brport/hairpin_mode", "1")
            with entered(p.netns), RouteSocket() as inner:
                index = socket.if_nametoindex(p.container_if)
                requests = [_set_link(LOOPBACK_INDEX, up=True), _set_link(index, up=True), _add_address(index, p.address, p.prefixlen)]
                if p.gateway is not None:
                    requests.append(_default_route(index, p.gateway))
                inner.send(requests)
        except BaseException:
            host.send([_del_link(p.host_if)])
            raise
    finally:
        os.close(ns_fd)


def reap(names: Sequence[str], grace: float = 0.1) -> None:
    """Remove released veth pairs by their host ends.

    A pair whose namespace has just been let go disappears with it, in the kernel's own batch:
    give those ``grace`` seconds, then delete what is left (one at a time: costly).
    """
    deadline = time.monotonic() + grace
    left = [n for n in names if _exists(n)]
    while left and time.monotonic() < deadline:
        time.sleep(0.002)
        left = [n for n in left if _exists(n)]
    for name in left:
        delete_link(name)


def _exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


@dataclass
class Spare:
    """A network namespace made ahead of its container: lo up, and a veth pair whose inner end
    is ``eth0`` (down) and whose host end ``name`` is down and on no bridge yet.

    ``fd`` keeps the namespace (and with it the pair) alive; closing it lets the kernel
    reclaim both once no process is inside, which is also what happens when the daemon dies.
    """

    fd: int
    name: str
    host_index: int
    inner_index: int
    inner: RouteSocket  # opened inside the namespace

    @property
    def path(self) -> str:
        """A path another process can join the namespace by."""
        return f"/proc/{os.getpid()}/fd/{self.fd}"

    def close(self) -> None:
        """Let the namespace go (the kernel removes it and the pair in the background)."""
        self.inner.close()
        os.close(self.fd)


def make_spare(host: RouteSocket, name: str, mtu: int) -> Spare:
    """Create a namespace with its veth pair (``name`` on the host side), ready to be wired."""
    with created() as fd:
        inner = RouteSocket()
        try:
            inner.send([_set_link(LOOPBACK_INDEX, up=True)])
        except BaseException:
            inner.close()
            raise
    try:
        host.send([_veth(name, mtu, [("IFLA_IFNAME", "eth0"), ("IFLA_NET_NS_FD", fd), ("IFLA_MTU", mtu)])])
        with entered(f"/proc/self/fd/{fd}"):
            inner_index = socket.if_nametoindex("eth0")
        return Spare(fd, name, socket.if_nametoindex(name), inner_index, inner)
    except BaseException:
        inner.close()
        os.close(fd)
        raise


def wire(spare: Spare, p: Plug, host: RouteSocket) -> None:
    """Finish a spare for a container: its address, MAC and route inside; the host end renamed
    to the endpoint's, enslaved and up. About as cheap as netlink gets: two batches."""
    requests = [_set_link(spare.inner_index, up=True, address=p.mac, mtu=p.mtu),
                _add_address(spare.inner_index, p.address, p.prefixlen)]  # fmt: skip
    if p.gateway is not None:
        requests.append(_default_route(spare.inner_index, p.gateway))
    spare.inner.send(requests)
    master = socket.if_nametoindex(p.bridge)
    host.send([_set_link(spare.host_index, up=True, ifname=p.host_if, master=master, mtu=p.mtu)])
    _sysctl(f"/sys/class/net/{p.host_if}/brport/hairpin_mode", "1")
