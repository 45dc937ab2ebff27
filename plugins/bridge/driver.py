"""The ``network`` slot provider: bridge networks with IPAM, ports, NAT and DNS.

State lives in the store (kind ``network``): each network's settings and its endpoints
(container -> address, veth, published ports). Every change is a versioned update made
under one lock, so an address or a host port is never given to two containers, also across
a daemon restart. What the kernel holds (bridges, veths, nftables table) is derived from that
state: at start the driver removes links it named but does not know and rewrites its table.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import trio

from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.slots import Endpoint

from . import dns, ipam, netlink, ports, rules
from .pool import SparePool

log = logging.getLogger("shoal.bridge")

KIND = "network"
DEFAULT = "bridge"
#: Networks every engine shows; only ``bridge`` is a real bridge.
PREDEFINED = ("bridge", "host", "none")
#: Seconds without a container start after which released links and namespaces are removed,
#: and the longest they wait for such a pause.
QUIET, REAP_DELAY = 0.05, 1.0
#: The short id of the two networks that exist only as modes.
_MODE_IDS = {"host": "0" * 63 + "1", "none": "0" * 63 + "2"}


class PredefinedNetwork(InvalidArgument):
    """An operation refused on bridge, host or none (Docker answers 403)."""


@dataclass(frozen=True)
class BridgeSettings:
    """What the driver is configured with (see the plugin's config for each field)."""

    bridge: str
    default_subnet: str
    pools: tuple[str, ...]
    bridge_prefix: str
    veth_prefix: str
    table: str
    mtu: int
    port_range: tuple[int, int]
    dns_upstreams: tuple[str, ...]
    remove_on_exit: bool
    pool_size: int = 0
    spare_prefix: str = "shs"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"


def host_resolvers(path: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    """The host's nameservers (loopback ones included: the daemon forwards from the host)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and ":" not in parts[1]:
            out.append((parts[1], 53))
    return out


def _upstream(text: str) -> tuple[str, int]:
    host, _, port = text.partition(":")
    return host, int(port or 53)


class BridgeDriver:
    """Fills the ``network`` slot (see ``shoal.slots.Network``)."""

    def __init__(self, store: Any, settings: BridgeSettings) -> None:
        self.store = store
        self.settings = settings
        self._lock = trio.Lock()
        self._networks: dict[str, dict[str, Any]] = {}  # id -> data, a mirror of the store
        self._versions: dict[str, int] = {}
        self._held: dict[tuple[str, str], list[socket.socket]] = {}  # (container, network) -> port sockets
        #: Whether this daemon turned IPv4 forwarding on (and so turns it off when it removes all).
        self._turned_forwarding_on = False
        self.dns = dns.DnsServer(self._resolve, self._upstreams)
        # Removing a namespace or a veth holds the kernel's network-wide lock for milliseconds
        # and stalls any container start meanwhile: the driver does it in the background, when
        # no container has started for a moment, many at once (the kernel batches them).
        self._doomed: set[str] = set()
        self._reap_wanted = trio.Event()
        self._last_start = -math.inf
        self._host = netlink.RouteSocket()  # kept open: one less socket per container start
        self.pool = SparePool(self._host, settings.pool_size, settings.spare_prefix, settings.mtu)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The driver's service: the DNS responder, the spare namespaces and the removal of
        released veths."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.dns.run)
            await nursery.start(self.pool.run)
            task_status.started()
            while True:
                await self._reap_wanted.wait()
                self._reap_wanted = trio.Event()
                await self._quiet()
                await self._reap()

    async def _quiet(self) -> None:
        """Return once no container has started for ``QUIET`` seconds (or after ``REAP_DELAY``)."""
        deadline = trio.current_time() + REAP_DELAY
        while (now := trio.current_time()) < deadline and now - self._last_start < QUIET:
            await trio.sleep(min(QUIET - (now - self._last_start), deadline - now))

    async def _reap(self) -> None:
        names = sorted(self._doomed)
        self.pool.bury()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(netlink.reap, names)
        self._doomed.difference_update(names)

    # ------------------------------------------------------------------ start and stop

    async def start(self) -> None:
        """Load the networks, make the default one, and bring the kernel in line with the store."""
        for obj in await self.store.list(KIND):
            self._remember(obj)
        if self._by_name(DEFAULT) is None:
            subnet = ipam.parse_subnet(self.settings.default_subnet)
            await self._create_record(DEFAULT, subnet, ipam.default_gateway(subnet), self.settings.bridge,
                                      internal=False, labels={}, options={}, default=True)  # fmt: skip
        self._turned_forwarding_on = await trio.to_thread.run_sync(netlink.enable_forwarding)
        wanted_links = set()
        for net in self._networks.values():
            wanted_links.add(net["bridge"])
            wanted_links.update(ep["host_if"] for ep in net["endpoints"].values())
        ours = (self.settings.bridge_prefix, self.settings.veth_prefix)
        for name in await trio.to_thread.run_sync(netlink.links_with_prefix, (*ours, self.settings.bridge)):
            if name not in wanted_links and (name == self.settings.bridge or name.startswith(ours)):
                log.info("removing link %s left by an earlier run", name)
                await trio.to_thread.run_sync(netlink.delete_link, name)
        for net in self._networks.values():
            await self._make_bridge(net)
        await self._apply_rules()

    async def close(self) -> None:
        """Release the daemon's own resources; with ``remove_on_exit`` also every bridge and the
        rules, unless a container still uses them (containers outlive the daemon: a restarted
        daemon finds them live and keeps their networks)."""
        for key in list(self._held):
            for sock in self._held.pop(key):
                sock.close()
        with trio.CancelScope(shield=True):
            await self.pool.close()
            await self._reap()
            self._host.close()
            if not self.settings.remove_on_exit or any(n["endpoints"] for n in self._networks.values()):
                return
            # The networks stay in the store: the next start makes their bridges again.
            await rules.remove(self.settings.table)
            for net in self._networks.values():
                await trio.to_thread.run_sync(netlink.delete_link, net["bridge"])
            if self._turned_forwarding_on:
                await trio.to_thread.run_sync(netlink.disable_forwarding)

    async def _make_bridge(self, net: Mapping[str, Any]) -> None:
        subnet = IPv4Network(net["IPAM"]["Config"][0]["Subnet"])
        gateway = net["IPAM"]["Config"][0]["Gateway"]
        mtu = int(net["Options"].get("com.docker.network.driver.mtu") or self.settings.mtu)
        await trio.to_thread.run_sync(netlink.ensure_bridge, net["bridge"], gateway, subnet.prefixlen, mtu)

    async def _apply_rules(self) -> None:
        bridges = [
            rules.BridgeRules(n["bridge"], n["IPAM"]["Config"][0]["Subnet"], bool(n.get("Internal")))
            for n in self._networks.values()
        ]
        dnats = [
            rules.DnatRule(p["proto"], p["host_ip"], p["host_port"], ep["ip"], p["container_port"])
            for n in self._networks.values()
            for ep in n["endpoints"].values()
            for p in ep.get("ports", [])
        ]
        await rules.apply(self.settings.table, bridges, dnats)

    # ------------------------------------------------------------------ the mirror of the store

    def _remember(self, obj: Any) -> None:
        self._networks[obj.id] = _thaw(obj.data)
        self._versions[obj.id] = obj.version

    def _by_name(self, name: str) -> dict[str, Any] | None:
        for net in self._networks.values():
            if net["Name"] == name:
                return net
        return None

    def _find(self, ref: str) -> dict[str, Any]:
        if ref in self._networks:
            return self._networks[ref]
        named = self._by_name(ref)
        if named is not None:
            return named
        matches = [n for nid, n in self._networks.items() if ref and nid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(matches)} matches found on id prefix)")
        raise NotFound(f"network {ref} not found")

    async def _commit(self, net: dict[str, Any]) -> None:
        obj = await self.store.update(KIND, net["Id"], net, self._versions[net["Id"]], {"name": net["Name"]})
        self._remember(obj)

    # ------------------------------------------------------------------ networks

    async def _create_record(self, name: str, subnet: IPv4Network, gateway: IPv4Address, bridge: str, *,
                             internal: bool, labels: Mapping[str, str], options: Mapping[str, str],
                             default: bool = False) -> dict[str, Any]:  # fmt: skip
        nid = secrets.token_hex(32)
        data = {
            "Name": name,
            "Id": nid,
            "Created": _now(),
            "Scope": "local",
            "Driver": "bridge",
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": str(subnet), "Gateway": str(gateway)}]},
            "Internal": internal,
            "Attachable": False,
            "Ingress": False,
            "Options": dict(options),
            "Labels": dict(labels),
            "bridge": bridge,
            "default": default,
            "cursor": int(gateway) + 1,
            "endpoints": {},
        }
        self._remember(await self.store.create(KIND, nid, data, {"name": name}))
        return self._networks[nid]

    async def create_network(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a user-defined bridge network from Docker's ``NetworkCreateRequest``."""
        name = body.get("Name")
        if not name or not isinstance(name, str):
            raise InvalidArgument("network name is required")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if name in PREDEFINED:
            raise PredefinedNetwork(f"{name} is a pre-defined network and cannot be created")
        if body.get("EnableIPv6"):
            raise InvalidArgument("IPv6 networks are not supported by the bridge driver")
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
        configs = list(((body.get("IPAM") or {}).get("Config")) or [])
        if len(configs) > 1:
            raise InvalidArgument("the bridge driver takes one IPv4 subnet per network")
        async with self._lock:
            if self._by_name(name) is not None:
                raise Conflict(f"network with name {name} already exists")
            used = [(n["Name"], IPv4Network(n["IPAM"]["Config"][0]["Subnet"])) for n in self._networks.values()]
            config = configs[0] if configs else {}
            if config.get("Subnet"):
                subnet = ipam.parse_subnet(config["Subnet"])
                ipam.check_overlap(subnet, used)
            else:
                if config.get("Gateway"):
                    raise InvalidArgument("a gateway needs a subnet (--subnet) to belong to")
                subnet = ipam.pick_subnet(ipam.parse_pools(self.settings.pools), [s for _, s in used])
            if config.get("Gateway"):
                gateway = ipam.parse_address(config["Gateway"], "gateway")
                ipam.check_in_subnet(gateway, subnet, "gateway")
            else:
                gateway = ipam.default_gateway(subnet)
            nid_bridge = options.get("com.docker.network.bridge.name")
            mtu = options.get("com.docker.network.driver.mtu")
            if mtu is not None and not (mtu.isdigit() and 68 <= int(mtu) <= 65535):
                raise InvalidArgument(f"invalid MTU {mtu!r}: expected 68-65535")
            if nid_bridge is not None and (not nid_bridge or len(nid_bridge) > 15):
                raise InvalidArgument(f"invalid bridge name {nid_bridge!r}: 1 to 15 characters")
            bridge = nid_bridge or self.settings.bridge_prefix + secrets.token_hex(8)[: 15 - len(self.settings.bridge_prefix)]
            if any(n["bridge"] == bridge for n in self._networks.values()):
                raise Conflict(f"bridge {bridge} is already used by another network")
            net = await self._create_record(name, subnet, gateway, bridge, internal=bool(body.get("Internal")),
                                            labels=labels, options=options)  # fmt: skip
            try:
                await self._make_bridge(net)
                await self._apply_rules()
            except BaseException:
                with trio.CancelScope(shield=True):
                    await self._drop_network(net)
                raise
        return {"Id": net["Id"], "Warning": ""}

    async def _drop_network(self, net: dict[str, Any]) -> None:
        await self.store.delete(KIND, net["Id"])
        del self._networks[net["Id"]]
        del self._versions[net["Id"]]
        await trio.to_thread.run_sync(netlink.delete_link, net["bridge"])
        await self._apply_rules()

    async def remove_network(self, ref: str) -> None:
        """Remove a user-defined network that no container is attached to."""
        if ref in ("host", "none"):
            raise PredefinedNetwork(f"{ref} is a pre-defined network and cannot be removed")
        async with self._lock:
            net = self._find(ref)
            if net.get("default"):
                raise PredefinedNetwork(f"{net['Name']} is a pre-defined network and cannot be removed")
            if net["endpoints"]:
                raise Conflict(f"error while removing network: network {net['Name']} id {net['Id']} has active endpoints")
            await self._drop_network(net)

    def _mode_network(self, name: str) -> dict[str, Any]:
        return {"Name": name, "Id": _MODE_IDS[name], "Created": "0001-01-01T00:00:00Z", "Scope": "local",
                "Driver": "host" if name == "host" else "null", "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": None, "Config": None}, "Internal": False,
                "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
                "Containers": {}, "Options": {}, "Labels": {}}  # fmt: skip

    def _docker(self, net: Mapping[str, Any]) -> dict[str, Any]:
        prefixlen = IPv4Network(net["IPAM"]["Config"][0]["Subnet"]).prefixlen
        options = {"com.docker.network.bridge.name": net["bridge"], **net["Options"]}
        if net.get("default"):
            options["com.docker.network.bridge.default_bridge"] = "true"
        return {
            **{k: v for k, v in net.items() if k[0].isupper()},
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Options": options,
            "Containers": {
                cid: {"Name": ep["name"], "EndpointID": ep["id"], "MacAddress": ep["mac"],
                      "IPv4Address": f"{ep['ip']}/{prefixlen}", "IPv6Address": ""}  # fmt: skip
                for cid, ep in net["endpoints"].items()
            },
        }

    async def inspect_network(self, ref: str) -> dict[str, Any]:
        """Docker's ``Network`` object for a network name, id or id prefix."""
        if ref in _MODE_IDS or ref in _MODE_IDS.values():
            return self._mode_network(ref if ref in _MODE_IDS else next(k for k, v in _MODE_IDS.items() if v == ref))
        return self._docker(self._find(ref))

    async def list_networks(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
        """Every network (bridge, host and none included), filtered as ``GET /networks`` does."""
        out = [self._docker(n) for n in self._networks.values()] + [self._mode_network(m) for m in _MODE_IDS]
        for key, values in (filters or {}).items():
            if key == "name":
                out = [n for n in out if any(v in n["Name"] for v in values)]
            elif key == "id":
                out = [n for n in out if any(n["Id"].startswith(v) for v in values)]
            elif key == "driver":
                out = [n for n in out if n["Driver"] in values]
            elif key == "type":
                custom = {n["Id"] for n in out if n["Name"] not in PREDEFINED}
                out = [n for n in out if ("custom" in values and n["Id"] in custom) or ("builtin" in values and n["Id"] not in custom)]
            elif key == "scope":
                out = [n for n in out if n["Scope"] in values]
            elif key == "label":
                out = [n for n in out if all(_label_matches(n["Labels"], v) for v in values)]
            elif key == "dangling":
                want = values[0] in ("1", "true")
                out = [n for n in out if (n["Name"] not in PREDEFINED and not n["Containers"]) == want]
            else:
                raise InvalidArgument(f"invalid filter '{key}'")
        return sorted(out, key=lambda n: n["Name"])

    async def prune_networks(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[str]:
        """Remove every user-defined network without endpoints; returns their names."""
        filters = dict(filters or {})
        unknown = set(filters) - {"label", "until"}
        if unknown:
            raise InvalidArgument(f"invalid filter '{sorted(unknown)[0]}'")
        removed = []
        for net in list(self._networks.values()):
            if net.get("default") or net["endpoints"]:
                continue
            if not all(_label_matches(net["Labels"], v) for v in filters.get("label", [])):
                continue
            try:
                await self.remove_network(net["Id"])
            except (Conflict, NotFound):
                continue  # attached or removed meanwhile
            removed.append(net["Name"])
        return removed

    # ------------------------------------------------------------------ endpoints

    async def allocate(self, container: str, name: str, network: str, options: Mapping[str, Any]) -> Endpoint:
        """Reserve an address (and published ports) for a container on a network."""
        async with self._lock:
            net = self._find(network)
            existing = net["endpoints"].get(container)
            if existing is not None:
                if (container, net["Id"]) not in self._held and existing.get("ports"):
                    self._rehold(container, net["Id"], existing["ports"])
                return self._endpoint(net, container, existing)
            subnet = IPv4Network(net["IPAM"]["Config"][0]["Subnet"])
            taken = {net["IPAM"]["Config"][0]["Gateway"], *(ep["ip"] for ep in net["endpoints"].values())}
            address, cursor = ipam.allocate(subnet, taken, net["cursor"], options.get("ip") or None)
            aliases = [a for a in options.get("aliases") or [] if a]
            if aliases and net.get("default"):
                raise InvalidArgument("network-scoped aliases are supported only for user-defined networks")
            wanted = ports.requests(options.get("port_bindings"), options.get("exposed_ports"), bool(options.get("publish_all")))
            bindings, held = ports.choose(wanted, self._taken_ports(), self.settings.port_range)
            ep = {
                "id": secrets.token_hex(32),
                "name": name,
                "ip": str(address),
                "mac": ipam.mac_for(address),
                "host_if": self.settings.veth_prefix + secrets.token_hex(8)[: 15 - len(self.settings.veth_prefix)],
                "aliases": aliases,
                "ports": [b.as_dict() for b in bindings],
                "upstreams": list(options.get("dns") or []),
            }
            net["endpoints"][container] = ep
            net["cursor"] = cursor
            try:
                await self._commit(net)
                if bindings:
                    await self._apply_rules()
            except BaseException:
                for sock in held:
                    sock.close()
                with trio.CancelScope(shield=True):
                    await self._forget_endpoint(container, net["Id"])
                raise
            if held:
                self._held[(container, net["Id"])] = held
            return self._endpoint(net, container, ep)

    def _taken_ports(self) -> list[tuple[str, str, int]]:
        return [
            ports.PortBinding(**p).key()
            for n in self._networks.values()
            for ep in n["endpoints"].values()
            for p in ep.get("ports", [])
        ]

    def _rehold(self, container: str, network_id: str, bindings: list[dict[str, Any]]) -> None:
        held = []
        for b in bindings:
            try:
                held.append(ports.hold(ports.PortBinding(**b)))
            except Conflict as exc:
                log.warning("container %s: published port no longer held: %s", container[:12], exc)
        self._held[(container, network_id)] = held

    def _endpoint(self, net: Mapping[str, Any], container: str, ep: Mapping[str, Any]) -> Endpoint:
        subnet = IPv4Network(net["IPAM"]["Config"][0]["Subnet"])
        return Endpoint(
            network=net["Name"],
            container=container,
            interface=ep["host_if"],
            ipv4=ep["ip"],
            gateway=net["IPAM"]["Config"][0]["Gateway"],
            mac=ep["mac"],
            aliases=tuple(ep["aliases"]),
            network_id=net["Id"],
            endpoint_id=ep["id"],
            prefixlen=subnet.prefixlen,
            ports=tuple(dict(p) for p in ep.get("ports", [])),
            nameserver=None if net.get("default") else dns.ADDRESS,
        )

    async def endpoints(self, container: str) -> list[Endpoint]:
        """A container's endpoints on every network, in no particular order."""
        return [self._endpoint(n, container, n["endpoints"][container]) for n in self._networks.values() if container in n["endpoints"]]

    async def attach(self, container: str, netns: str, network: str, options: Mapping[str, Any]) -> Endpoint:
        """Wire an allocated endpoint into the container's namespace (allocating it if needed)."""
        ep = await self.allocate(container, options.get("name") or container[:12], network, options)
        net = self._find(ep.network_id)
        mtu = int(net["Options"].get("com.docker.network.driver.mtu") or self.settings.mtu)
        plug = netlink.Plug(netns=netns, bridge=net["bridge"], host_if=ep.interface,
                            container_if=options.get("interface") or "eth0", address=ep.ipv4 or "",
                            prefixlen=ep.prefixlen, gateway=ep.gateway if options.get("default_route", True) else None,
                            mac=ep.mac or "", mtu=mtu)  # fmt: skip
        if options.get("ip") and self._doomed:
            # A fixed address may have just been released by a container whose pair is still
            # on the bridge (same address, same MAC): remove it first.
            await self._reap()
        self._last_start = trio.current_time()
        spare = self.pool.unwired(container) if plug.container_if == "eth0" else None
        try:
            if spare is not None and _same_namespace(netns, spare.fd):
                await trio.to_thread.run_sync(netlink.wire, spare, plug, self._host)
                self.pool.wired(container)
            else:
                await trio.to_thread.run_sync(netlink.plug, plug, self._host)
            if ep.nameserver and not self.dns.serving(container):
                self.dns.serve(container, await trio.to_thread.run_sync(dns.open_socket, netns))
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.detach(container, ep.network_id)
            raise
        return ep

    async def sandbox(self, container: str) -> str | None:
        """A network namespace made ahead for the container to join (None: make its own).

        Joining it and then ``attach`` is much cheaper than a new namespace and a new veth
        pair; ``release`` lets it go.
        """
        self._last_start = trio.current_time()
        return self.pool.take(container)

    async def restore(self, container: str, netns: str) -> None:
        """After a daemon restart: hold a running container's ports and answer its DNS again."""
        async with self._lock:
            on = [n for n in self._networks.values() if container in n["endpoints"]]
            for net in on:
                ep = net["endpoints"][container]
                if (container, net["Id"]) not in self._held and ep.get("ports"):
                    self._rehold(container, net["Id"], ep["ports"])
        if any(not n.get("default") for n in on) and not self.dns.serving(container):
            try:
                self.dns.serve(container, await trio.to_thread.run_sync(dns.open_socket, netns))
            except OSError as exc:
                log.warning("container %s: DNS not restored: %s", container[:12], exc)

    async def detach(self, container: str, network: str) -> None:
        """Unwire a container from a network and release its address and ports."""
        async with self._lock:
            try:
                net = self._find(network)
            except NotFound:
                return
            ep = net["endpoints"].get(container)
            if ep is None:
                return
            self._doomed.add(ep["host_if"])
            self._reap_wanted.set()
            await self._forget_endpoint(container, net["Id"])
            if ep.get("ports"):
                await self._apply_rules()
        if not any(container in n["endpoints"] for n in self._networks.values() if not n.get("default")):
            self.dns.stop(container)

    async def _forget_endpoint(self, container: str, network_id: str) -> None:
        for sock in self._held.pop((container, network_id), []):
            sock.close()
        net = self._networks[network_id]
        if container in net["endpoints"]:
            del net["endpoints"][container]
            await self._commit(net)

    async def release(self, container: str) -> None:
        """Detach a container from every network it is on."""
        for nid in [nid for nid, n in self._networks.items() if container in n["endpoints"]]:
            await self.detach(container, nid)
        if self.pool.retire(container):
            self._reap_wanted.set()

    async def reconcile(self, keep: Collection[str]) -> None:
        """Release the endpoints of every container not in ``keep`` (ended while the daemon was away)."""
        gone = {cid for n in self._networks.values() for cid in n["endpoints"] if cid not in keep}
        for cid in gone:
            log.info("releasing the network endpoints of container %s (no longer running)", cid[:12])
            await self.release(cid)

    # ------------------------------------------------------------------ DNS

    def _resolve(self, container: str, name: str) -> list[str] | None:
        found: list[str] = []
        for net in self._networks.values():
            if net.get("default") or container not in net["endpoints"]:
                continue
            suffix = "." + net["Name"].lower()
            short = name[: -len(suffix)] if name.endswith(suffix) else name
            for cid, ep in net["endpoints"].items():
                names = {ep["name"].lower(), cid[:12], *(a.lower() for a in ep["aliases"])}
                if short in names and ep["ip"] not in found:
                    found.append(ep["ip"])
        return found or None

    def _upstreams(self, container: str) -> list[tuple[str, int]]:
        for net in self._networks.values():
            ep = net["endpoints"].get(container)
            if ep and ep.get("upstreams"):
                return [_upstream(u) for u in ep["upstreams"]]
        if self.settings.dns_upstreams:
            return [_upstream(u) for u in self.settings.dns_upstreams]
        return host_resolvers()


def _same_namespace(path: str, fd: int) -> bool:
    """Whether the namespace at ``path`` is the one ``fd`` refers to."""
    try:
        there, here = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino)


def _label_matches(labels: Mapping[str, str], spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _thaw(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data))

