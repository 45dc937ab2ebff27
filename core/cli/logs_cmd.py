"""``shoal logs``: a container's output, stdout and stderr kept apart."""

from __future__ import annotations

import time

from .client import quote_id
from .common import Parser, UsageError, client, command, flag_value
from .streams import Output, copy_output
from .units import parse_timestamp


@command("logs")
def logs(argv: list[str]) -> int:
    """``shoal logs [-f] [-t] [--since T] [--until T] [-n N] CONTAINER``."""
    parser = Parser("shoal logs", "Fetch the logs of a container.")
    parser.add_argument("-f", "--follow", action="store_true", help="follow log output")
    parser.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    parser.add_argument("--since", help="logs since a timestamp (2013-01-02T13:23:37Z) or relative (42m)")
    parser.add_argument("--until", help="logs before a timestamp (2013-01-02T13:23:37Z) or relative (42m)")
    parser.add_argument("-n", "--tail", default="all", help="number of lines to show from the end (default all)")
    parser.add_argument("--details", action="store_true", help="show extra details provided to logs")
    parser.add_argument("container", metavar="CONTAINER")
    args = parser.parse_args(argv)
    now = time.time()
    since = flag_value("--since", args.since, lambda v: parse_timestamp(v, now)) if args.since else None
    until = flag_value("--until", args.until, lambda v: parse_timestamp(v, now)) if args.until else None
    if args.tail != "all" and not args.tail.lstrip("-").isdigit():
        raise UsageError(f'invalid argument "{args.tail}" for "-n, --tail" flag: not a number or "all"')

    api = client()
    path = f"/containers/{quote_id(args.container)}"
    tty = bool((api.get(f"{path}/json").get("Config") or {}).get("Tty"))
    query = {"stdout": 1, "stderr": 1, "follow": args.follow, "timestamps": args.timestamps,
             "since": since, "until": until, "tail": args.tail, "details": args.details or None}  # fmt: skip
    with api.open("GET", f"{path}/logs", query) as response:
        content_type = response.headers.get("content-type", "")
        multiplexed = "multiplexed" in content_type or (not tty and "raw-stream" not in content_type)
        copy_output(response.iter_chunks(), multiplexed, Output())
    return 0
