"""``shoal version``, ``shoal info`` and ``shoal events``."""

from __future__ import annotations

import json
import platform
import time
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from .client import API_VERSION, ClientError
from .common import Parser, client, command, flag_value, print_error
from .container_cmds import parse_filters
from .template import render
from .units import bytes_size, parse_timestamp

#: ``docker version`` aligns every value at this column.
VALUE_COLUMN = 20
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def _field_lines(fields: list[tuple[str, Any]], indent: str, column: int = 0) -> list[str]:
    """``label: value`` lines (empty values left out); with ``column``, values start there."""
    return [(f"{indent}{label}:".ljust(column - 1) + f" {value}") for label, value in fields if value not in (None, "")]


@command("version")
def version(argv: list[str]) -> int:
    """``shoal version [-f FORMAT]``: client and daemon versions."""
    parser = Parser("shoal version", "Show the shoal version information.")
    parser.add_argument("-f", "--format", help="format output using a Go-like template")
    args = parser.parse_args(argv)
    client_info = {"Version": __version__, "ApiVersion": API_VERSION, "PythonVersion": platform.python_version(),
                   "Os": "linux", "Arch": _ARCH.get(platform.machine(), platform.machine())}  # fmt: skip
    server_error = None
    try:
        server = client().get("/version")
    except ClientError as exc:
        server, server_error = None, exc
    if args.format:
        print(render(args.format, {"Client": client_info, "Server": server}))
    else:
        lines = ["Client:", *_field_lines([
            ("Version", __version__), ("API version", API_VERSION), ("Python version", client_info["PythonVersion"]),
            ("OS/Arch", f"{client_info['Os']}/{client_info['Arch']}")], " ", VALUE_COLUMN)]  # fmt: skip
        if server:
            minimum = f" (minimum version {server['MinAPIVersion']})" if server.get("MinAPIVersion") else ""
            lines += ["", f"Server: {(server.get('Platform') or {}).get('Name') or 'shoal'}", " Engine:"]
            lines += _field_lines([
                ("Version", server.get("Version")), ("API version", f"{server.get('ApiVersion', '')}{minimum}"),
                ("Git commit", server.get("GitCommit")), ("Built", server.get("BuildTime")),
                ("OS/Arch", f"{server.get('Os', '')}/{server.get('Arch', '')}"),
                ("Kernel version", server.get("KernelVersion")),
                ("Experimental", str(server.get("Experimental", False)).lower())], "  ", VALUE_COLUMN)  # fmt: skip
            for component in server.get("Components") or ():
                if component.get("Name") != "Engine":
                    lines += [
                        f" {component.get('Name')}:",
                        *_field_lines([("Version", component.get("Version"))], "  ", VALUE_COLUMN),
                    ]
        print("\n".join(lines))
    if server_error is not None:
        print_error(server_error)
        return 1
    return 0


@command("info")
def info(argv: list[str]) -> int:
    """``shoal info [-f FORMAT]``: system-wide information from the daemon."""
    parser = Parser("shoal info", "Display system-wide information.")
    parser.add_argument("-f", "--format", help="format output using a Go-like template")
    args = parser.parse_args(argv)
    data = client().get("/info") or {}
    if args.format:
        print(render(args.format, data))
        return 0
    fields = [
        ("Containers", data.get("Containers")), (" Running", data.get("ContainersRunning")),
        (" Paused", data.get("ContainersPaused")), (" Stopped", data.get("ContainersStopped")),
        ("Images", data.get("Images")), ("Server Version", data.get("ServerVersion")),
        ("Storage Driver", data.get("Driver")), ("Logging Driver", data.get("LoggingDriver")),
        ("Cgroup Driver", data.get("CgroupDriver")), ("Cgroup Version", data.get("CgroupVersion")),
        ("Kernel Version", data.get("KernelVersion")), ("Operating System", data.get("OperatingSystem")),
        ("OSType", data.get("OSType")), ("Architecture", data.get("Architecture")), ("CPUs", data.get("NCPU")),
        ("Total Memory", bytes_size(data["MemTotal"]) if data.get("MemTotal") else None),
        ("Name", data.get("Name")), ("ID", data.get("ID")), ("Docker Root Dir", data.get("DockerRootDir")),
        ("Debug Mode", str(data["Debug"]).lower() if "Debug" in data else None),
    ]  # fmt: skip
    print("Server:")
    print("\n".join(_field_lines(fields, " ")))
    for warning in data.get("Warnings") or ():
        print_error(warning)
    return 0


def format_event(event: dict[str, Any]) -> str:
    """One event line as ``docker events`` prints it:
    ``2024-05-01T10:00:00.123456789Z container start 3f4e... (image=busybox, name=web)``."""
    nanos = event.get("timeNano") or int(event.get("time", 0)) * 1_000_000_000
    moment = datetime.fromtimestamp(nanos // 1_000_000_000, UTC).astimezone()
    fraction = f"{nanos % 1_000_000_000:09d}".rstrip("0")
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "")
    offset = moment.strftime("%z")
    stamp += "Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}"
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    line = f"{stamp} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    if attributes:
        line += " (" + ", ".join(f"{k}={v}" for k, v in sorted(attributes.items())) + ")"
    return line


@command("events")
def events(argv: list[str]) -> int:
    """``shoal events [--since T] [--until T] [-f FILTER] [--format FORMAT]``."""
    parser = Parser("shoal events", "Get real time events from the server.")
    parser.add_argument("--since", help="show all events created since timestamp")
    parser.add_argument("--until", help="stream events until this timestamp")
    parser.add_argument("-f", "--filter", action="append", default=[], help="filter output based on conditions")
    parser.add_argument("--format", help="format output using a Go-like template ('{{json .}}' for JSON lines)")
    args = parser.parse_args(argv)
    now = time.time()
    since = flag_value("--since", args.since, lambda v: parse_timestamp(v, now)) if args.since else None
    until = flag_value("--until", args.until, lambda v: parse_timestamp(v, now)) if args.until else None
    try:
        filters = parse_filters(args.filter)
    except ValueError as exc:
        parser.error(str(exc))
    with client().open("GET", "/events", {"since": since, "until": until, "filters": filters}) as response:
        for line in response.iter_lines():
            event = json.loads(line)
            print(render(args.format, event) if args.format else format_event(event), flush=True)
    return 0
