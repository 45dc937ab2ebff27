"""The local terminal during ``run -it`` and ``exec -it``: raw mode, size, and resize events."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator


def terminal_size(fd: int | None = None) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on ``fd`` (stdout by default), None when not a terminal."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno() if fd is None else fd)
    except (OSError, ValueError, AttributeError):
        return None
    return size.lines, size.columns


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Put the terminal on ``fd`` in raw mode (keys go to the container as typed, Ctrl-C
    included) and restore it however the block ends. A no-op when ``fd`` is not a terminal."""
    if not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def on_resize(callback: Callable[[int, int], None]) -> Iterator[None]:
    """Call ``callback(rows, columns)`` now and whenever the terminal changes size (SIGWINCH)."""
    size = terminal_size()
    if size is None:
        yield
        return

    def handle(signum: int, frame: object) -> None:
        new = terminal_size()
        if new:
            callback(*new)

    previous = signal.signal(signal.SIGWINCH, handle)
    try:
        callback(*size)
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)
