"""What the engine asks of the ``network`` slot, and Docker's NetworkSettings it records.

Order within a start: ``prepare`` reserves addresses and ports (before the first process,
so /etc/hosts names the address), ``attach`` wires the namespace of the created process
(before it runs its program), ``release`` gives everything back when the process ends.
Without a network provider every function leaves the container with only ``lo``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.slots import Endpoint

if TYPE_CHECKING:
    from .container import Container

#: Modes that are not networks of the provider.
_MODES = ("host", "none")


def _primary(host: Mapping[str, Any]) -> str | None:
    """The network a container joins at start, or None for host/none/container:."""
    mode = host.get("NetworkMode") or "default"
    if mode in _MODES or mode.startswith("container:"):
        return None
    return "bridge" if mode == "default" else mode


def _blank(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Docker's ``EndpointSettings`` with the client's part (IPAMConfig, Aliases) kept."""
    config = config or {}
    return {
        "IPAMConfig": config.get("IPAMConfig"),
        "Links": config.get("Links"),
        "Aliases": config.get("Aliases"),
        "MacAddress": "",
        "DriverOpts": config.get("DriverOpts"),
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


async def check(network: Any, body: Mapping[str, Any], host: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Validate a create request's networking; the initial NetworkSettings and warnings."""
    mode = host.get("NetworkMode") or "default"
    requested = dict(((body.get("NetworkingConfig") or {}).get("EndpointsConfig")) or {})
    primary = _primary(host)
    warnings: list[str] = []
    if primary is None:
        if requested and mode in _MODES:
            extra = [n for n in requested if n != mode]
            if extra:
                raise InvalidArgument(f"container cannot be connected to network {extra[0]} in network mode {mode}")
        networks = {mode: _blank(requested.get(mode))} if mode in _MODES else {}
        return {"Networks": networks, "SandboxKey": "", "Ports": {}}, warnings
    if network is None:
        if primary != "bridge":
            raise NotFound(f"network {primary} not found")
        warnings.append("no network plugin is loaded: the container gets its own network namespace with only lo")
        return {"Networks": {}, "SandboxKey": "", "Ports": {}}, warnings
    networks: dict[str, Any] = {}
    for name in [primary, *(n for n in requested if n not in (primary, mode))]:
        config = requested.get(name) or {}
        try:
            info = await network.inspect_network(name)
        except NotFound:
            # Docker reports an unknown network when the container starts: a 404 from create
            # would make clients take it for a missing image and try to pull it.
            networks[name] = _blank(config)
            continue
        address = (config.get("IPAMConfig") or {}).get("IPv4Address")
        if address and name == "bridge":
            raise InvalidArgument("user specified IP address is supported on user defined networks only")
        if config.get("Aliases") and name == "bridge":
            raise InvalidArgument("network-scoped aliases are supported only for user-defined networks")
        networks[info["Name"]] = _blank(config)
    return {"Networks": networks, "SandboxKey": "", "Ports": {}}, warnings


def _options(c: Container, name: str, primary: bool) -> dict[str, Any]:
    settings = c.record["NetworkSettings"]["Networks"].get(name) or {}
    host = c.host_config
    options: dict[str, Any] = {
        "ip": (settings.get("IPAMConfig") or {}).get("IPv4Address") or None,
        "aliases": list(settings.get("Aliases") or []),
        "dns": list(host.get("Dns") or []),
        "name": c.name,
    }
    if primary:
        options.update(port_bindings=host.get("PortBindings"), exposed_ports=c.config.get("ExposedPorts"),
                       publish_all=bool(host.get("PublishAllPorts")))  # fmt: skip
    return options


def _wanted(c: Container) -> list[str]:
    primary = _primary(c.host_config)
    if primary is None:
        return []
    names = list(c.record["NetworkSettings"]["Networks"])
    return [primary, *(n for n in names if n != primary)] if primary in names else names


async def prepare(network: Any, c: Container) -> list[Endpoint]:
    """Reserve the container's endpoints on all its networks; all or none."""
    if network is None:
        return []
    endpoints: list[Endpoint] = []
    try:
        for i, name in enumerate(_wanted(c)):
            endpoints.append(await network.allocate(c.id, c.name, name, _options(c, name, i == 0)))
    except BaseException:
        with trio.CancelScope(shield=True):
            await network.release(c.id)
        raise
    return endpoints


async def sandbox(network: Any, c: Container, namespaces: dict[str, str | None]) -> None:
    """Let a container that would get a new network namespace join one the provider made ahead."""
    if network is None or namespaces.get("net", "") is not None or _primary(c.host_config) is None:
        return
    path = await network.sandbox(c.id)
    if path:
        namespaces["net"] = path


def etc_host(host: Mapping[str, Any], endpoints: list[Endpoint]) -> Mapping[str, Any]:
    """HostConfig as ``etc_files`` should see it: the embedded DNS as the only nameserver."""
    nameserver = next((ep.nameserver for ep in endpoints if ep.nameserver), None)
    if nameserver is None:
        return host
    return {**host, "Dns": [nameserver], "DnsOptions": [*(host.get("DnsOptions") or []), "ndots:0"]}


def addresses(endpoints: list[Endpoint]) -> list[str]:
    """The container's own addresses, for /etc/hosts."""
    return [ep.ipv4 for ep in endpoints if ep.ipv4]


async def attach(network: Any, c: Container, pid: int, endpoints: list[Endpoint]) -> None:
    """Wire every reserved endpoint into the new process's namespace; record the settings."""
    if network is None or not endpoints:
        return
    netns = f"/proc/{pid}/ns/net"
    attached = []
    for i, ep in enumerate(endpoints):
        options = {**_options(c, ep.network, i == 0), "interface": f"eth{i}", "default_route": i == 0}
        attached.append(await network.attach(c.id, netns, ep.network_id, options))
    record(c, attached, netns)


def docker_ports(bindings: Iterable[Mapping[str, Any]], exposed: Mapping[str, Any] | None) -> dict[str, Any]:
    """NetworkSettings.Ports: "80/tcp" -> [{"HostIp", "HostPort"}], or None for a port only exposed."""
    out: dict[str, Any] = {key: None for key in exposed or {}}
    for b in bindings:
        key = f"{b['container_port']}/{b['proto']}"
        out[key] = [*(out.get(key) or []), {"HostIp": b["host_ip"] or "0.0.0.0", "HostPort": str(b["host_port"])}]
    return out


def record(c: Container, endpoints: list[Endpoint], sandbox: str) -> None:
    """Fill Docker's NetworkSettings from the container's endpoints (the primary one first)."""
    settings = c.record["NetworkSettings"]
    networks = settings.setdefault("Networks", {})
    bindings = [p for ep in endpoints for p in ep.ports]
    settings.update(SandboxKey=sandbox, Ports=docker_ports(bindings, c.config.get("ExposedPorts")))
    for ep in endpoints:
        entry = networks.get(ep.network) or _blank()
        entry.update(NetworkID=ep.network_id, EndpointID=ep.endpoint_id, Gateway=ep.gateway or "",
                     IPAddress=ep.ipv4 or "", IPPrefixLen=ep.prefixlen, MacAddress=ep.mac or "",
                     DNSNames=[c.name, c.id[:12], *ep.aliases] if ep.nameserver else None)  # fmt: skip
        networks[ep.network] = entry
    first = endpoints[0] if endpoints else None
    settings.update(IPAddress=first.ipv4 if first else "", Gateway=first.gateway if first else "",
                    IPPrefixLen=first.prefixlen if first else 0, MacAddress=first.mac if first else "")  # fmt: skip


async def release(network: Any, c: Container) -> None:
    """Give back the container's addresses and ports; the settings keep only the requests."""
    if network is not None:
        with trio.CancelScope(shield=True):
            await network.release(c.id)
    settings = c.record.get("NetworkSettings") or {}
    settings["Networks"] = {name: _blank(entry) for name, entry in (settings.get("Networks") or {}).items()}
    settings.update(SandboxKey="", Ports={}, IPAddress="", Gateway="", IPPrefixLen=0, MacAddress="")
    c.record["NetworkSettings"] = settings


async def reconcile(network: Any, containers: Mapping[str, Container], keep: set[str]) -> None:
    """After live restore: running containers get their ports and DNS back, others release."""
    if network is None:
        return
    for cid in keep:
        c = containers[cid]
        if c.process is not None:
            await network.restore(cid, f"/proc/{c.process.pid}/ns/net")
    await network.reconcile(keep)


async def connect(engine: Any, network_ref: str, container_ref: str, config: Mapping[str, Any]) -> None:
    """``docker network connect``: join now if running, else at the next start."""
    net = engine.network
    if net is None:
        raise NotFound(f"network {network_ref} not found")
    info = await net.inspect_network(network_ref)
    c = engine._get(container_ref)
    name = info["Name"]
    if _primary(c.host_config) is None:
        raise InvalidArgument("container sharing network namespace with another container or host cannot be connected to any other network")
    if name == "bridge" and ((config.get("IPAMConfig") or {}).get("IPv4Address") or config.get("Aliases")):
        raise InvalidArgument("user specified IP address and aliases are supported on user defined networks only")
    async with c.lock:
        networks = c.record["NetworkSettings"]["Networks"]
        if name in networks and (not c.running or networks[name].get("EndpointID")):
            raise Conflict(f"endpoint with name {c.name} already exists in network {name}")
        networks[name] = _blank(config)
        if c.running and c.process is not None:
            index = len([n for n in networks.values() if n.get("EndpointID")])
            options = {**_options(c, name, False), "interface": f"eth{index}", "default_route": False}
            try:
                await net.attach(c.id, f"/proc/{c.process.pid}/ns/net", name, options)
            except BaseException:
                del networks[name]
                raise
            current = {ep.network: ep for ep in await net.endpoints(c.id)}
            ordered = [current[n] for n in _wanted(c) if n in current]
            record(c, ordered, f"/proc/{c.process.pid}/ns/net")
        await engine._save(c)
    engine._emit(c, "connect")


async def disconnect(engine: Any, network_ref: str, container_ref: str, force: bool = False) -> None:
    """``docker network disconnect``."""
    net = engine.network
    if net is None:
        raise NotFound(f"network {network_ref} not found")
    info = await net.inspect_network(network_ref)
    c = engine._get(container_ref)
    async with c.lock:
        networks = c.record["NetworkSettings"]["Networks"]
        if info["Name"] not in networks and not force:
            raise InvalidArgument(f"container {c.id} is not connected to network {info['Name']}")
        await net.detach(c.id, info["Id"])
        networks.pop(info["Name"], None)
        await engine._save(c)
    engine._emit(c, "disconnect")
