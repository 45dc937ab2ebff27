"""What every daemon-facing command shares: argument parsing with Docker's exit codes, the
client, and the way errors reach the user."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from .client import APIError, Client, ClientError
from .template import TemplateError

#: Docker's exit status for usage errors and daemon errors before a container ran.
EXIT_USAGE = 125


class UsageError(Exception):
    """A bad flag value, reported with a pointer to ``--help``."""


class Parser(argparse.ArgumentParser):
    """argparse with Docker's conventions: ``--help`` only (``-h`` is free for ``--hostname``),
    and usage errors that point to ``--help`` and exit with 125."""

    def __init__(self, prog: str, description: str, **kwargs: Any) -> None:
        super().__init__(prog=prog, description=description, add_help=False, **kwargs)
        self.add_argument("--help", action="help", help="print usage")

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message}\nSee '{self.prog} --help'.", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def flag_value(flag: str, value: str, parse: Callable[[str], Any]) -> Any:
    """``parse(value)``, turning its ``ValueError`` into Docker's flag error message."""
    try:
        return parse(value)
    except ValueError as exc:
        raise UsageError(f'invalid argument "{value}" for "{flag}" flag: {exc}') from None


def print_error(message: object) -> None:
    """One line on stderr."""
    print(message, file=sys.stderr, flush=True)


def command(name: str, api_error_status: int = 1) -> Callable[[Callable[..., int]], Callable[[list[str]], int]]:
    """Wrap the ``run(argv)`` of ``shoal NAME``: usage and daemon errors become messages and
    exit codes.

    ``api_error_status`` is the exit code for a daemon error (Docker: 125 for run/create,
    1 elsewhere); usage errors exit with 125, a Ctrl-C with 130.
    """

    def decorate(run: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
        @functools.wraps(run)
        def wrapper(argv: list[str]) -> int:
            try:
                return run(argv)
            except UsageError as exc:
                print_error(f"{exc}\nSee 'shoal {name} --help'.")
                return EXIT_USAGE
            except TemplateError as exc:
                print_error(f"template parsing error: {exc}")
                return 1
            except ClientError as exc:
                print_error(exc)
                return api_error_status
            except KeyboardInterrupt:
                return 130
            except BrokenPipeError:
                return 0

        return wrapper

    return decorate


def client() -> Client:
    """The client for the daemon named by ``-H``/``$SHOAL_HOST`` or the default socket."""
    return Client()


def for_each(names: Iterable[str], action: Callable[[str], object], echo: bool = True) -> int:
    """Apply ``action`` to every name, like ``docker stop a b c``: print each name that
    succeeded, each daemon error on stderr, and exit 1 if any failed."""
    failed = False
    for name in names:
        try:
            action(name)
        except APIError as exc:
            print_error(exc)
            failed = True
            continue
        if echo:
            print(name, flush=True)
    return 1 if failed else 0
