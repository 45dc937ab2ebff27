"""Entering a network namespace from one thread, and leaving it again.

``setns(2)`` with CLONE_NEWNET changes only the calling thread's namespace, so a worker
thread can open netlink or ordinary sockets inside a container's namespace (sockets stay
bound to the namespace they were created in) and then return to the daemon's own.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _unshare() -> None:
    if _libc.unshare(CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@contextmanager
def created() -> Iterator[int]:
    """Run the block in a new network namespace (this thread only); yields a descriptor of it.

    The descriptor keeps the namespace alive after the block: the caller closes it.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _unshare()
        try:
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                yield fd
            except BaseException:
                os.close(fd)
                raise
        finally:
            _setns(home)
    finally:
        os.close(home)


@contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the block in the network namespace at ``path`` (this thread only)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            # A thread left in a container's namespace would poison the worker pool.
            _setns(home)
    finally:
        os.close(home)
