"""System endpoints: ``/_ping``, ``/version``, ``/info`` and the ``/events`` stream."""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from shoal import __version__
from shoal.events import Event, EventsLagged
from shoal.errors import InvalidArgument

from .http import Request, Response
from .params import normalize_filters, parse_time, rfc3339_nano
from .routes import API_VERSION, MIN_API_VERSION, RouteTable

if TYPE_CHECKING:
    from .app import Api

log = logging.getLogger("shoal.engine_api")

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x"}
PING_HEADERS = [
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Pragma", "no-cache"),
    ("Builder-Version", "1"),
]


def register(routes: RouteTable, api: Api) -> None:
    """Add the system endpoints."""

    async def ping(request: Request) -> Response:
        return Response(200, b"OK", "text/plain; charset=utf-8", list(PING_HEADERS))

    async def version(request: Request) -> Response:
        return Response.json(version_info())

    async def info(request: Request) -> Response:
        return Response.json(await system_info(api))

    async def events(request: Request) -> Response:
        return Response(200, await event_stream(api, request), "application/json")

    routes.add("GET", "/_ping", ping)
    routes.add("HEAD", "/_ping", ping)
    routes.add("GET", "/version", version)
    routes.add("GET", "/info", info)
    routes.add("GET", "/events", events)


def architecture() -> str:
    """This machine's architecture in Docker's (Go's) naming."""
    machine = platform.machine()
    return _GOARCH.get(machine, machine)


def version_info() -> dict[str, Any]:
    """The ``/version`` body."""
    details = {
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
        "Arch": architecture(),
        "KernelVersion": platform.release(),
        "Experimental": "false",
    }
    return {
        "Platform": {"Name": "shoal"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"{platform.python_implementation()} {platform.python_version()}",
        "Os": "linux",
        "Arch": architecture(),
        "KernelVersion": platform.release(),
        "BuildTime": "",
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cgroup_version() -> str:
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


async def system_info(api: Api) -> dict[str, Any]:
    """The ``/info`` body: counts from the slots, driver names from the engine's plugins."""
    containers = await api.containers.list(all=True)
    states = [c.get("State", "") for c in containers]
    images = await api.images.list() if api.images is not None else []
    providers = api.slot_providers()
    runtime = providers.get("isolation", "")
    hostname = socket.gethostname()
    return {
        "ID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"shoal://{hostname}{api.data_root}")).upper(),
        "Containers": len(containers),
        "ContainersRunning": states.count("running"),
        "ContainersPaused": states.count("paused"),
        "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
        "Images": len(images),
        "Driver": providers.get("snapshots", ""),
        "DriverStatus": [],
        "Plugins": {
            "Volume": ["local"] if api.volumes is not None else [],
            "Network": [providers["network"]] if "network" in providers else [],
            "Authorization": None,
            "Log": ["json-file"],
        },
        "MemoryLimit": "resources" in providers,
        "SwapLimit": "resources" in providers,
        "CpuCfsPeriod": "resources" in providers,
        "CpuCfsQuota": "resources" in providers,
        "CPUShares": "resources" in providers,
        "CPUSet": "resources" in providers,
        "PidsLimit": "resources" in providers,
        "OomKillDisable": False,
        "IPv4Forwarding": Path("/proc/sys/net/ipv4/ip_forward").exists()
        and Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1",
        "Debug": log.isEnabledFor(logging.DEBUG),
        "NFd": len(os.listdir("/proc/self/fd")),
        "NGoroutines": trio.lowlevel.current_statistics().tasks_living,
        "SystemTime": rfc3339_nano(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": _cgroup_version(),
        "NEventsListener": api.event_listeners,
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": []},
        "DockerRootDir": str(api.data_root),
        "HttpProxy": os.environ.get("HTTP_PROXY", ""),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
        "NoProxy": os.environ.get("NO_PROXY", ""),
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": __version__,
        "Runtimes": {runtime: {"path": runtime}} if runtime else {},
        "DefaultRuntime": runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},  # fmt: skip
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=unconfined"] if runtime else [],
        "Warnings": [],
    }


# --------------------------------------------------------------------------- events

_EVENT_FILTERS = {"type", "event", "action", "container", "image", "label", "volume", "network", "scope", "daemon"}


def event_filter(filters: dict[str, list[str]]) -> Callable[[Event], bool]:
    """The predicate for Docker's event filters; each named filter must match one of its values."""
    unknown = set(filters) - _EVENT_FILTERS
    if unknown:
        raise InvalidArgument(f"invalid filter {sorted(unknown)[0]!r}")

    def names(event: Event) -> set[str]:
        return {event.actor_id, event.attributes.get("name", "")} - {""}

    def matches_actor(event: Event, kind: str, values: list[str]) -> bool:
        if event.type != kind:
            return False
        return any(v in names(event) or (len(v) >= 3 and event.actor_id.startswith(v)) for v in values)

    def accept(event: Event) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "type" and event.type not in values:
                return False
            if key in ("event", "action") and not any(
                event.action == v or event.action.split(":", 1)[0] == v for v in values
            ):
                return False
            if key == "container" and not matches_actor(event, "container", values):
                return False
            if key in ("volume", "network") and not matches_actor(event, key, values):
                return False
            if key == "image":
                image = event.attributes.get("image", "")
                if not (image in values or (event.type == "image" and names(event) & set(values))):
                    return False
            if key == "label" and not any(_label_matches(event, v) for v in values):
                return False
            if key == "scope" and event.scope not in values:
                return False
        return True

    return accept


def _label_matches(event: Event, spec: str) -> bool:
    key, sep, value = spec.partition("=")
    if key not in event.attributes:
        return False
    return not sep or event.attributes[key] == value


async def event_stream(api: Api, request: Request) -> AsyncIterator[bytes]:
    """Events as JSON lines: the kept ones since ``since``, then live ones until ``until``."""
    now = time.time()
    since = request.arg("since")
    until = request.arg("until")
    since_nano = int(parse_time(since, "since", now) * 1e9) if since else None
    until_s = parse_time(until, "until", now) if until else None
    accept = event_filter(normalize_filters(request.json_arg("filters")))
    if until_s is not None and since_nano is None:
        since_nano = None if until_s > now else 0
    return _events(api, accept, since_nano, until_s)


async def _events(
    api: Api, accept: Callable[[Event], bool], since_nano: int | None, until_s: float | None
) -> AsyncIterator[bytes]:
    until_nano = int(until_s * 1e9) if until_s is not None else None
    api.event_listeners += 1
    try:
        async with api.events.subscribe(accept, since_nano) as sub:
            deadline = trio.current_time() + (until_s - time.time()) if until_s is not None else float("inf")
            while True:
                event = None
                # Kept events replay without blocking, so a past deadline still lets them out.
                with trio.move_on_at(deadline):
                    try:
                        event = await sub.__anext__()
                    except EventsLagged as exc:
                        log.warning("event stream ended: %s", exc)
                if event is None or (until_nano is not None and event.time_nano > until_nano):
                    return
                yield json.dumps(event.to_docker()).encode() + b"\n"
    finally:
        api.event_listeners -= 1
