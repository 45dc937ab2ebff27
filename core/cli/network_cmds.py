"""``shoal network``: create, ls, inspect, rm, connect, disconnect, prune."""

from __future__ import annotations

from typing import Any

from .client import APIError, quote_id
from .common import Parser, UsageError, client, command, for_each, print_error
from .container_cmds import parse_filters
from .table import print_table
from .template import print_documents, render

_SUBCOMMANDS = ("create", "ls", "list", "inspect", "rm", "remove", "connect", "disconnect", "prune")


def _path(name: str) -> str:
    return f"/networks/{quote_id(name)}"


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f'invalid argument "{item}" for "{flag}" flag: expected key=value')
        out[key] = value
    return out


def _create(argv: list[str]) -> int:
    parser = Parser("shoal network create", "Create a network.")
    parser.add_argument("-d", "--driver", default="bridge", help="driver to manage the network")
    parser.add_argument("--subnet", action="append", default=[], help="subnet in CIDR format")
    parser.add_argument("--gateway", action="append", default=[], help="IPv4 gateway of the subnet")
    parser.add_argument("--internal", action="store_true", help="restrict external access to the network")
    parser.add_argument("--label", action="append", default=[], help="set metadata on a network")
    parser.add_argument("-o", "--opt", action="append", default=[], help="set driver specific options")
    parser.add_argument("name", metavar="NETWORK")
    args = parser.parse_args(argv)
    if len(args.gateway) > len(args.subnet):
        raise UsageError("every --gateway needs a --subnet")
    configs = [{"Subnet": s, **({"Gateway": args.gateway[i]} if i < len(args.gateway) else {})} for i, s in enumerate(args.subnet)]
    body = {"Name": args.name, "Driver": args.driver, "Internal": args.internal, "Labels": _pairs(args.label, "--label"),
            "Options": _pairs(args.opt, "--opt"), "IPAM": {"Driver": "default", "Config": configs}}  # fmt: skip
    print(client().post("/networks/create", body=body)["Id"])
    return 0


def _ls(argv: list[str]) -> int:
    parser = Parser("shoal network ls", "List networks.")
    parser.add_argument("-f", "--filter", action="append", default=[], help="provide filter values (e.g. driver=bridge)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only display network IDs")
    parser.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    parser.add_argument("--format", help="format output using a Go-like template")
    args = parser.parse_args(argv)
    try:
        filters = parse_filters(args.filter)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    networks = client().get("/networks", {"filters": filters})
    ident = (lambda n: n["Id"]) if args.no_trunc else (lambda n: n["Id"][:12])
    if args.quiet:
        for n in networks:
            print(ident(n))
    elif args.format:
        for n in networks:
            print(render(args.format, n))
    else:
        print_table(("NETWORK ID", "NAME", "DRIVER", "SCOPE"), [(ident(n), n["Name"], n["Driver"], n["Scope"]) for n in networks])
    return 0


def _inspect(argv: list[str]) -> int:
    parser = Parser("shoal network inspect", "Display detailed information on one or more networks.")
    parser.add_argument("-f", "--format", help="format output using a Go-like template")
    parser.add_argument("names", nargs="+", metavar="NETWORK")
    args = parser.parse_args(argv)
    api, found, failed = client(), [], False
    for name in args.names:
        try:
            found.append(api.get(_path(name)))
        except APIError as exc:
            print_error(exc)
            failed = True
    print_documents(found, args.format)
    return 1 if failed else 0


def _rm(argv: list[str]) -> int:
    parser = Parser("shoal network rm", "Remove one or more networks.")
    parser.add_argument("names", nargs="+", metavar="NETWORK")
    api = client()
    return for_each(parser.parse_args(argv).names, lambda n: api.call("DELETE", _path(n)))


def _connect(argv: list[str]) -> int:
    parser = Parser("shoal network connect", "Connect a container to a network.")
    parser.add_argument("--ip", help="IPv4 address (e.g. 172.30.100.104)")
    parser.add_argument("--alias", action="append", default=[], help="add network-scoped alias for the container")
    parser.add_argument("network", metavar="NETWORK")
    parser.add_argument("container", metavar="CONTAINER")
    args = parser.parse_args(argv)
    endpoint: dict[str, Any] = {"Aliases": args.alias or None}
    if args.ip:
        endpoint["IPAMConfig"] = {"IPv4Address": args.ip}
    client().post(f"{_path(args.network)}/connect", body={"Container": args.container, "EndpointConfig": endpoint})
    return 0


def _disconnect(argv: list[str]) -> int:
    parser = Parser("shoal network disconnect", "Disconnect a container from a network.")
    parser.add_argument("-f", "--force", action="store_true", help="force the container to disconnect from a network")
    parser.add_argument("network", metavar="NETWORK")
    parser.add_argument("container", metavar="CONTAINER")
    args = parser.parse_args(argv)
    client().post(f"{_path(args.network)}/disconnect", body={"Container": args.container, "Force": args.force})
    return 0


def _prune(argv: list[str]) -> int:
    parser = Parser("shoal network prune", "Remove all unused networks.")
    parser.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    parser.add_argument("--filter", action="append", default=[], help="provide filter values (e.g. label=a=b)")
    args = parser.parse_args(argv)
    if not args.force:
        answer = input("WARNING! This will remove all custom networks not used by at least one container.\n"
                       "Are you sure you want to continue? [y/N] ")  # fmt: skip
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    try:
        filters = parse_filters(args.filter)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    deleted = client().post("/networks/prune", {"filters": filters}).get("NetworksDeleted") or []
    if deleted:
        print("Deleted Networks:")
        for name in deleted:
            print(name)
    return 0


@command("network")
def network(argv: list[str]) -> int:
    """``shoal network COMMAND``."""
    if not argv or argv[0] not in _SUBCOMMANDS:
        parser = Parser("shoal network", "Manage networks.")
        parser.add_argument("subcommand", choices=_SUBCOMMANDS, metavar="COMMAND",
                            help="create, ls, inspect, rm, connect, disconnect or prune")  # fmt: skip
        parser.parse_args(argv[:1])
        return 125
    handlers = {"create": _create, "ls": _ls, "list": _ls, "inspect": _inspect, "rm": _rm, "remove": _rm,
                "connect": _connect, "disconnect": _disconnect, "prune": _prune}  # fmt: skip
    return handlers[argv[0]](argv[1:])
