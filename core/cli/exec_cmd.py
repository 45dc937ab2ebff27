"""``shoal exec``: run a command in a running container."""

from __future__ import annotations

import contextlib
import os
import sys
import time

from .client import ClientError, quote_id
from .common import Parser, client, command, flag_value, print_error
from .runopts import parse_env
from .streams import Output, pump
from .terminal import on_resize, raw_terminal, terminal_size

#: Seconds to wait for the exit code of a command whose output has ended.
EXIT_CODE_GRACE = 2.0


@command("exec")
def exec_(argv: list[str]) -> int:
    """``shoal exec [-i] [-t] [-d] [-e K=V] [-u USER] [-w DIR] CONTAINER COMMAND [ARG...]``."""
    import argparse

    parser = Parser("shoal exec", "Execute a command in a running container.")
    parser.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open even if not attached")
    parser.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    parser.add_argument("-d", "--detach", action="store_true", help="detached mode: run command in the background")
    parser.add_argument(
        "-e", "--env", action="append", default=[], metavar="KEY=VALUE", help="set environment variables"
    )
    parser.add_argument("-u", "--user", help="username or UID (format: <name|uid>[:<group|gid>])")
    parser.add_argument("-w", "--workdir", help="working directory inside the container")
    parser.add_argument("--privileged", action="store_true", help="give extended privileges to the command")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("requires at least 2 arguments")
    env: list[str] = []
    for item in args.env:
        env += flag_value("-e, --env", item, lambda v: parse_env([v], os.environ))

    attach = not args.detach
    body = {"Cmd": args.command, "Env": env or None, "Tty": args.tty, "Privileged": args.privileged,
            "AttachStdin": args.interactive and attach, "AttachStdout": attach, "AttachStderr": attach}  # fmt: skip
    if args.user:
        body["User"] = args.user
    if args.workdir:
        body["WorkingDir"] = args.workdir
    if args.tty and (size := terminal_size()):
        body["ConsoleSize"] = list(size)
    api = client()
    exec_id = api.post(f"/containers/{quote_id(args.container)}/exec", body=body)["Id"]
    start = {"Detach": args.detach, "Tty": args.tty}
    if args.detach:
        api.post(f"/exec/{exec_id}/start", body=start)
        return 0

    connection = api.hijack(f"/exec/{exec_id}/start", body=start)
    stdin_fd = sys.stdin.fileno() if args.interactive else None
    try:
        with contextlib.ExitStack() as stack:
            if args.tty:

                def resize(rows: int, columns: int) -> None:
                    with contextlib.suppress(ClientError):
                        api.post(f"/exec/{exec_id}/resize", {"h": rows, "w": columns})

                stack.enter_context(on_resize(resize))
                if stdin_fd is not None:
                    stack.enter_context(raw_terminal(stdin_fd))
            pump(connection, tty=args.tty, stdin_fd=stdin_fd, output=Output())
    finally:
        connection.close()
    # The output can end a moment before the daemon records the exit: poll briefly.
    deadline = time.monotonic() + EXIT_CODE_GRACE
    while (result := api.get(f"/exec/{exec_id}/json") or {}).get("Running") and time.monotonic() < deadline:
        time.sleep(0.01)
    if result.get("Running"):
        print_error("the command is still running after its output ended")
        return 1
    return int(result.get("ExitCode") or 0)
