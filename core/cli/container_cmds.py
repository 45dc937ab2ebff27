"""Container verbs that are one request per container: ``ps``, ``stop``, ``kill``, ``rm``,
``wait``, ``pause``, ``unpause``, ``restart``, ``rename``, ``top`` and ``inspect``."""

from __future__ import annotations

import json
import time
from typing import Any

from .client import APIError, quote_id
from .common import Parser, client, command, for_each, print_error
from .listing import HEADERS, PS_COLUMNS, container_fields, print_rows
from .table import print_table
from .template import print_documents


def parse_filters(items: list[str]) -> str | None:
    """``-f key=value`` flags as the API's JSON filter map ``{"key": {"value": true}}``."""
    filters: dict[str, dict[str, bool]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key.strip().lower(), {})[value] = True
    return json.dumps(filters) if filters else None


def _container(name: str) -> str:
    return f"/containers/{quote_id(name)}"


@command("ps")
def ps(argv: list[str]) -> int:
    """``shoal ps [-a] [-q] [--no-trunc] [-f FILTER] [--format FORMAT] [-n N] [-l]``."""
    parser = Parser("shoal ps", "List containers.")
    parser.add_argument("-a", "--all", action="store_true", help="show all containers (default shows just running)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only display container IDs")
    parser.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    parser.add_argument("-f", "--filter", action="append", default=[], help="filter output based on conditions")
    parser.add_argument("--format", help="format output using a Go-like template ('table ...' for a table)")
    parser.add_argument(
        "-n", "--last", type=int, default=-1, help="show n last created containers (includes all states)"
    )
    parser.add_argument("-l", "--latest", action="store_true", help="show the latest created container")
    args = parser.parse_args(argv)
    try:
        filters = parse_filters(args.filter)
    except ValueError as exc:
        parser.error(str(exc))
    limit = 1 if args.latest else args.last
    query = {"all": (args.all or limit > 0) or None, "limit": limit if limit > 0 else None, "filters": filters}
    summaries = client().get("/containers/json", query) or []
    now = time.time()
    rows = [container_fields(s, now, trunc=not args.no_trunc) for s in summaries]
    if args.quiet:
        for row in rows:
            print(row["ID"])
        return 0
    print_rows(rows, args.format, PS_COLUMNS, HEADERS)
    return 0


@command("stop")
def stop(argv: list[str]) -> int:
    """``shoal stop [-t SECONDS] [-s SIGNAL] CONTAINER...``."""
    return _stop_or_restart("stop", "Stop one or more running containers.", argv)


@command("restart")
def restart(argv: list[str]) -> int:
    """``shoal restart [-t SECONDS] [-s SIGNAL] CONTAINER...``."""
    return _stop_or_restart("restart", "Restart one or more containers.", argv)


def _stop_or_restart(verb: str, description: str, argv: list[str]) -> int:
    parser = Parser(f"shoal {verb}", description)
    parser.add_argument("-t", "--time", "--timeout", type=int, help="seconds to wait before killing the container")
    parser.add_argument("-s", "--signal", help="signal to send to the container")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    args = parser.parse_args(argv)
    api, query = client(), {"t": args.time, "signal": args.signal}
    return for_each(args.containers, lambda c: api.post(f"{_container(c)}/{verb}", query))


@command("kill")
def kill(argv: list[str]) -> int:
    """``shoal kill [-s SIGNAL] CONTAINER...``."""
    parser = Parser("shoal kill", "Kill one or more running containers.")
    parser.add_argument("-s", "--signal", help="signal to send to the container (default KILL)")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    args = parser.parse_args(argv)
    api = client()
    return for_each(args.containers, lambda c: api.post(f"{_container(c)}/kill", {"signal": args.signal}))


@command("rm")
def rm(argv: list[str]) -> int:
    """``shoal rm [-f] [-v] CONTAINER...``."""
    parser = Parser("shoal rm", "Remove one or more containers.")
    parser.add_argument("-f", "--force", action="store_true", help="force the removal of a running container (SIGKILL)")
    parser.add_argument("-v", "--volumes", action="store_true", help="remove anonymous volumes of the container")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    args = parser.parse_args(argv)
    api, query = client(), {"force": args.force or None, "v": args.volumes or None}
    return for_each(args.containers, lambda c: api.call("DELETE", _container(c), query))


def _post_to_each(argv: list[str], verb: str, description: str) -> int:
    """``shoal VERB CONTAINER...``: POST /containers/{id}/VERB for each container."""
    parser = Parser(f"shoal {verb}", description)
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    api = client()
    return for_each(parser.parse_args(argv).containers, lambda c: api.post(f"{_container(c)}/{verb}"))


@command("pause")
def pause(argv: list[str]) -> int:
    """``shoal pause CONTAINER...``."""
    return _post_to_each(argv, "pause", "Pause all processes within one or more containers.")


@command("unpause")
def unpause(argv: list[str]) -> int:
    """``shoal unpause CONTAINER...``."""
    return _post_to_each(argv, "unpause", "Unpause all processes within one or more containers.")


@command("wait")
def wait(argv: list[str]) -> int:
    """``shoal wait CONTAINER...``: print each exit code once the container stops."""
    parser = Parser("shoal wait", "Block until one or more containers stop, then print their exit codes.")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    args = parser.parse_args(argv)
    api, failed = client(), False
    for name in args.containers:
        try:
            result = api.post(f"{_container(name)}/wait") or {}
        except APIError as exc:
            print_error(exc)
            failed = True
            continue
        print(result.get("StatusCode", 0), flush=True)
    return 1 if failed else 0


@command("rename")
def rename(argv: list[str]) -> int:
    """``shoal rename CONTAINER NEW_NAME``."""
    parser = Parser("shoal rename", "Rename a container.")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("name", metavar="NEW_NAME")
    args = parser.parse_args(argv)
    if not args.name.strip():
        print_error("Error: new name cannot be blank")
        return 1
    client().post(f"{_container(args.container)}/rename", {"name": args.name})
    return 0


@command("top")
def top(argv: list[str]) -> int:
    """``shoal top CONTAINER [ps OPTIONS]``."""
    parser = Parser("shoal top", "Display the running processes of a container.")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("ps_args", nargs="*", metavar="PS_OPTION")
    args = parser.parse_args(argv)
    result = client().get(f"{_container(args.container)}/top", {"ps_args": " ".join(args.ps_args) or None}) or {}
    print_table(result.get("Titles") or (), result.get("Processes") or ())
    return 0


def _inspect_one(api, name: str, kind: str | None) -> Any:
    if kind in (None, "container"):
        try:
            return api.get(f"{_container(name)}/json")
        except APIError as exc:
            if exc.status != 404 or kind == "container":
                raise
    try:
        return api.get(f"/images/{quote_id(name)}/json")
    except APIError as exc:
        if exc.status != 404 or kind == "image":
            raise
    raise LookupError(name)


@command("inspect")
def inspect(argv: list[str]) -> int:
    """``shoal inspect [-f FORMAT] [--type container|image] NAME...``: a JSON array like docker's."""
    parser = Parser("shoal inspect", "Return low-level information on containers or images.")
    parser.add_argument("-f", "--format", help="format output using a Go-like template")
    parser.add_argument("--type", choices=("container", "image"), help="only inspect objects of this type")
    parser.add_argument("names", nargs="+", metavar="NAME")
    args = parser.parse_args(argv)
    api, found, failed = client(), [], False
    for name in args.names:
        try:
            found.append(_inspect_one(api, name, args.type))
        except LookupError:
            print_error(f"Error: No such object: {name}")
            failed = True
        except APIError as exc:
            print_error(exc)
            failed = True
    print_documents(found, args.format)
    return 1 if failed else 0
