"""``shoal stats``: live resource usage per container, computed as the docker CLI does."""

from __future__ import annotations

import sys
import threading
import time

from .client import Client, ClientError, quote_id
from .common import Parser, client, command, print_error
from .stats_calc import StatsRow, stats_row
from .table import print_table

HEADERS = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS")
#: Seconds between redraws of the streaming table.
REFRESH = 1.0


def _one_sample(api: Client, container: str, rows: dict[str, StatsRow], errors: dict[str, Exception]) -> None:
    try:
        sample = api.get(f"/containers/{quote_id(container)}/stats", {"stream": 0}) or {}
        rows[container] = stats_row(sample, container_id=container, name=container)
    except (ClientError, OSError) as exc:
        errors[container] = exc


def _follow(api: Client, container: str, rows: dict[str, StatsRow]) -> None:
    try:
        with api.open("GET", f"/containers/{quote_id(container)}/stats", {"stream": 1}) as response:
            for sample in response.iter_json():
                rows[container] = stats_row(sample, container_id=container, name=container)
    except (ClientError, OSError):
        rows.pop(container, None)  # the container is gone: drop its line


@command("stats")
def stats(argv: list[str]) -> int:
    """``shoal stats [-a] [--no-stream] [--no-trunc] [CONTAINER...]``."""
    parser = Parser("shoal stats", "Display a live stream of container(s) resource usage statistics.")
    parser.add_argument("-a", "--all", action="store_true", help="show all containers (default shows just running)")
    parser.add_argument(
        "--no-stream", action="store_true", help="disable streaming stats and only pull the first result"
    )
    parser.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    parser.add_argument("containers", nargs="*", metavar="CONTAINER")
    args = parser.parse_args(argv)
    api = client()
    containers = args.containers or [c["Id"] for c in api.get("/containers/json", {"all": args.all or None}) or ()]
    rows: dict[str, StatsRow] = {}
    errors: dict[str, Exception] = {}
    if args.no_stream:
        threads = [threading.Thread(target=_one_sample, args=(api, c, rows, errors), daemon=True) for c in containers]
    else:
        threads = [threading.Thread(target=_follow, args=(api, c, rows), daemon=True) for c in containers]
    for thread in threads:
        thread.start()

    def draw() -> None:
        cells = [rows[c].cells() for c in containers if c in rows]
        if args.no_trunc:
            cells = [(rows[c].container_id, *rows[c].cells()[1:]) for c in containers if c in rows]
        print_table(HEADERS, cells)
        sys.stdout.flush()

    if args.no_stream:
        for thread in threads:
            thread.join()
        for container in containers:
            if container in errors:
                print_error(errors[container])
        draw()
        return 1 if errors else 0
    clear = "\033[2J\033[H" if sys.stdout.isatty() else ""
    while True:
        time.sleep(REFRESH)
        sys.stdout.write(clear)
        draw()
        if not any(t.is_alive() for t in threads) and not rows:
            return 0
