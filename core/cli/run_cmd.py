"""``shoal run``, ``shoal create`` and ``shoal start``.

``run`` follows the docker CLI's order so no output and no exit is lost however fast the
container ends: create, attach, register the wait, start, stream, then exit with the
container's status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from .client import APIError, Client, ClientError, quote_id
from .common import EXIT_USAGE, Parser, client, command, for_each, print_error
from .runopts import container_parser, create_body
from .streams import Output, pump
from .terminal import on_resize, raw_terminal

#: How long to wait for the daemon to confirm a wait is registered before starting anyway.
WAIT_REGISTERED_TIMEOUT = 2.0
#: Signals a non-TTY ``run`` forwards to the container, as ``docker run --sig-proxy`` does.
PROXIED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def with_default_tag(reference: str) -> str:
    """``busybox`` -> ``busybox:latest``; references with a tag or digest stay as they are."""
    if "@" in reference or ":" in reference.rsplit("/", 1)[-1]:
        return reference
    return f"{reference}:latest"


def start_error_status(message: str) -> int:
    """Docker's exit status for a failed start: 127 command not found, 126 not executable, else 125."""
    if "executable file not found" in message or "no such file or directory" in message.lower():
        return 127
    if "permission denied" in message.lower() or "is a directory" in message.lower():
        return 126
    return EXIT_USAGE


def create_container(api: Client, body: dict[str, Any], name: str | None) -> str:
    """``POST /containers/create``; the new container's ID. A missing image is pulled first,
    its progress on stderr, as the docker CLI does."""
    try:
        created = api.post("/containers/create", {"name": name}, body)
    except APIError as exc:
        if exc.status != 404 or "image" not in exc.message.lower():
            raise
        reference = with_default_tag(body["Image"])
        print_error(f"Unable to find image '{reference}' locally")
        from .image_cmds import pull

        with contextlib.redirect_stdout(sys.stderr):
            pull.__wrapped__([reference])  # undecorated: a failed pull is this command's error
        created = api.post("/containers/create", {"name": name}, body)
    for warning in created.get("Warnings") or ():
        print_error(f"WARNING: {warning}")
    return created["Id"]


class ExitWaiter:
    """A ``POST /containers/{id}/wait`` sent before the start, answered when the container exits."""

    def __init__(self, api: Client, container: str, condition: str) -> None:
        self._api, self._path, self._condition = api, f"/containers/{quote_id(container)}/wait", condition
        self._registered = threading.Event()
        self._result: dict[str, Any] | None = None
        self._error: ClientError | OSError | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._api.open("POST", self._path, {"condition": self._condition}) as response:
                self._registered.set()
                self._result = response.json()
        except (ClientError, OSError) as exc:
            self._error = exc
        finally:
            self._registered.set()

    def wait_registered(self) -> None:
        """Block until the daemon answered the request's header (it registered the wait)."""
        self._registered.wait(WAIT_REGISTERED_TIMEOUT)

    def status(self) -> int:
        """The container's exit code; a failed wait is reported and gives 125."""
        self._thread.join()
        if self._error is not None:
            is_daemon_error = isinstance(self._error, ClientError)
            print_error(self._error if is_daemon_error else f"error waiting for container: {self._error}")
            return EXIT_USAGE
        result = self._result or {}
        error = (result.get("Error") or {}).get("Message")
        if error:
            print_error(f"error waiting for container: {error}")
            return EXIT_USAGE
        return int(result.get("StatusCode", 0))


@contextlib.contextmanager
def proxy_signals(api: Client, container: str) -> Iterator[None]:
    """Forward the signals this process receives to the container (not with a TTY, where the
    terminal sends keys instead)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ClientError):
            api.post(f"/containers/{quote_id(container)}/kill", {"signal": signal.Signals(signum).name})

    previous = {name: signal.signal(getattr(signal, name), forward) for name in PROXIED_SIGNALS}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def _resize(api: Client, container: str):
    def resize(rows: int, columns: int) -> None:
        with contextlib.suppress(ClientError):
            api.post(f"/containers/{quote_id(container)}/resize", {"h": rows, "w": columns})

    return resize


def _remove_unstarted(api: Client, container: str) -> None:
    """``--rm`` for a container that never ran: do not leave it behind."""
    with contextlib.suppress(ClientError):
        api.call("DELETE", f"/containers/{quote_id(container)}", {"force": 1})


def attach_and_start(api: Client, container: str, *, tty: bool, stdin: bool, condition: str) -> int:
    """Attach, register the wait, start, stream until the output ends; the exit status."""
    attach_query = {"stream": 1, "stdin": int(stdin), "stdout": 1, "stderr": 1}
    stdin_fd = sys.stdin.fileno() if stdin else None
    connection = api.hijack(f"/containers/{quote_id(container)}/attach", attach_query)
    with contextlib.closing(connection), contextlib.ExitStack() as stack:
        if tty and stdin_fd is not None:
            stack.enter_context(raw_terminal(stdin_fd))  # from here on, keys go to the container as typed
        waiter = ExitWaiter(api, container, condition)
        waiter.wait_registered()
        try:
            api.post(f"/containers/{quote_id(container)}/start")
        except APIError as exc:
            stack.close()  # the terminal back to normal before the message
            print_error(exc)
            if condition == "removed":
                _remove_unstarted(api, container)
            return start_error_status(exc.message)
        if tty:
            stack.enter_context(on_resize(_resize(api, container)))
        else:
            stack.enter_context(proxy_signals(api, container))
        pump(connection, tty=tty, stdin_fd=stdin_fd, output=Output())
    return waiter.status()


@command("run", EXIT_USAGE)
def run(argv: list[str]) -> int:
    """``shoal run [OPTIONS] IMAGE [COMMAND] [ARG...]``."""
    parser = container_parser("shoal run", "Create and run a new container from an image.")
    parser.add_argument("-d", "--detach", action="store_true", help="run in the background and print the container ID")
    parser.add_argument("--rm", action="store_true", help="remove the container when it exits")
    args = parser.parse_args(argv)
    body = create_body(args, os.environ, os.getcwd(), detach=args.detach, auto_remove=args.rm)
    api = client()
    container = create_container(api, body, args.name)
    if args.detach:
        try:
            api.post(f"/containers/{quote_id(container)}/start")
        except APIError as exc:
            print_error(exc)
            if args.rm:
                _remove_unstarted(api, container)
            return start_error_status(exc.message)
        print(container)
        return 0
    try:
        return attach_and_start(
            api, container, tty=args.tty, stdin=args.interactive, condition="removed" if args.rm else "next-exit"
        )
    except APIError:
        if args.rm:
            _remove_unstarted(api, container)
        raise


@command("create", EXIT_USAGE)
def create(argv: list[str]) -> int:
    """``shoal create [OPTIONS] IMAGE [COMMAND] [ARG...]``: print the new container's ID."""
    parser = container_parser("shoal create", "Create a new container.")
    parser.add_argument("--rm", action="store_true", help="remove the container when it exits")
    args = parser.parse_args(argv)
    body = create_body(args, os.environ, os.getcwd(), detach=False, auto_remove=args.rm)
    print(create_container(client(), body, args.name))
    return 0


@command("start")
def start(argv: list[str]) -> int:
    """``shoal start [-a] [-i] CONTAINER...``."""
    parser = Parser("shoal start", "Start one or more stopped containers.")
    parser.add_argument("-a", "--attach", action="store_true", help="attach STDOUT/STDERR and forward signals")
    parser.add_argument("-i", "--interactive", action="store_true", help="attach the container's STDIN")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    args = parser.parse_args(argv)
    api = client()
    if not (args.attach or args.interactive):
        return for_each(args.containers, lambda c: api.post(f"/containers/{quote_id(c)}/start"))
    if len(args.containers) > 1:
        print_error("you cannot start and attach multiple containers at once")
        return 1
    details = api.get(f"/containers/{quote_id(args.containers[0])}/json")
    config = details.get("Config") or {}
    stdin = args.interactive and bool(config.get("OpenStdin"))
    return attach_and_start(api, details["Id"], tty=bool(config.get("Tty")), stdin=stdin, condition="next-exit")
