"""Messages between the daemon, the monitor, the starters and container processes.

Each message is one SOCK_SEQPACKET datagram holding a pickled dict, with file descriptors
attached through SCM_RIGHTS. Every party runs shoal's own code, so pickle is safe here.
"""

from __future__ import annotations

import pickle
import socket
from typing import Any

#: Largest message: a RuntimeSpec with many mounts and environment entries fits easily.
MAX_MESSAGE = 1 << 20
MAX_FDS = 8


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | tuple[int, ...] = ()) -> None:
    """Send one message with descriptors (blocking socket)."""
    socket.send_fds(sock, [pickle.dumps(message)], list(fds))


def recv(sock: socket.socket, limit: int = MAX_MESSAGE) -> tuple[dict[str, Any] | None, list[int]]:
    """Receive one message of at most ``limit`` bytes; (None, []) at end of stream."""
    data, fds, _flags, _addr = socket.recv_fds(sock, limit, MAX_FDS)
    if not data:
        return None, fds
    return pickle.loads(data), fds


def recv_nowait(sock: socket.socket, limit: int = MAX_MESSAGE) -> tuple[dict[str, Any] | None, list[int]]:
    """Like ``recv`` but raises ``BlockingIOError`` when no message is waiting."""
    data, fds, _flags, _addr = socket.recv_fds(sock, limit, MAX_FDS, socket.MSG_DONTWAIT)
    if not data:
        return None, fds
    return pickle.loads(data), fds
