"""``shoal raft status``: the Raft group of a manager, from its local control socket.

The raft plugin serves a unix socket (``raft.sock`` in the daemon's run root) answering JSON
lines; this command asks it for ``status`` and prints the members, the leader, the term, the
commit index and whether this member sees a quorum.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from typing import Any

from .table import print_table

DEFAULT_SOCKET = "/run/shoal/raft.sock"


def _ask(path: str, request: dict[str, Any], timeout: float) -> Any:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        with sock.makefile("rb") as answer:
            response = json.loads(answer.readline() or b"{}")
    if "ok" not in response:
        raise RuntimeError(f"{response.get('error', 'Error')}: {response.get('message', 'no answer')}")
    return response["ok"]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="shoal raft", description="Inspect the Raft group of a swarm manager.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = sub.add_parser("status", help="members, leader, term, commit index and quorum")
    status.add_argument("--socket", default=os.environ.get("SHOAL_RAFT_SOCKET", DEFAULT_SOCKET),
                        help="the manager's raft control socket (default: $SHOAL_RAFT_SOCKET or %(default)s)")  # fmt: skip
    status.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
    args = parser.parse_args(argv)
    try:
        report = _ask(args.socket, {"op": "status"}, args.timeout)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"shoal raft: cannot get the status from {args.socket}: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    print(f"Cluster:      {report['cluster']}")
    print(f"Node:         {report['id']} ({report['state']})")
    print(f"Leader:       {report['leader'] or 'none'}")
    print(f"Term:         {report['term']}")
    print(f"Commit index: {report['commit']} (applied {report['applied']}, last {report['last_index']})")
    print(f"Quorum:       {'held' if report['quorum'] else 'LOST'}")
    rows = []
    for m in report["members"]:
        marks = [w for w, on in (("leader", m["leader"]), ("self", m["self"])) if on]
        reach = "-" if m["self"] else ("yes" if m["connected"] else "no")
        rows.append((str(m["id"]), m["address"], m["role"], ", ".join(marks), reach,
                     "" if m["match"] is None else str(m["match"])))  # fmt: skip
    print()
    print_table(("ID", "ADDRESS", "ROLE", "", "REACHABLE", "MATCH"), rows)
    return 0 if report["quorum"] else 3
