"""The daemon's connection to the monitor of a state root: find it or start it, then talk.

A restarted daemon must reach the monitor that still runs its containers, so the monitor
listens on ``monitor.sock`` in the state root; when nothing answers there, a new monitor is
started (``python -m``, about 50 ms once per daemon start) with the listening socket and
the other end of a connection already made, so it has a client from its first instant.
"""

from __future__ import annotations

import array
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from shoal.errors import ShoalError

from . import wire
from .monitor import SOCKET_NAME, VERSION

#: Longest socket path bound directly; longer ones go through /proc/self/fd (sun_path is
#: 108 bytes).
_MAX_PATH = 100
#: How long closing waits for a monitor that said it would exit.
_EXIT_WAIT = 5.0


async def recv(sock: trio.socket.SocketType) -> tuple[dict[str, Any] | None, list[int]]:
    """One message with its descriptors (made close-on-exec); (None, fds) at end of stream."""
    data, ancdata, _flags, _addr = await sock.recvmsg(wire.MAX_MESSAGE, socket.CMSG_SPACE(wire.MAX_FDS * 4))
    fds = array.array("i")
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    received = list(fds)
    for fd in received:
        os.set_inheritable(fd, False)
    if not data:
        return None, received
    return pickle.loads(data), received


def _socket_address(path: Path) -> tuple[str, int | None]:
    """An address for ``path`` that fits sun_path, and a directory descriptor to close after."""
    if len(os.fsencode(path)) <= _MAX_PATH:
        return str(path), None
    dirfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{dirfd}/{path.name}", dirfd


def _connect(path: Path) -> socket.socket | None:
    """A connection to a listening monitor, or None (the stale socket file is removed)."""
    address, dirfd = _socket_address(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect(address)
        return sock
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        try:
            os.unlink(path)  # left by a monitor that was killed
        except FileNotFoundError:
            pass
        return None
    finally:
        if dirfd is not None:
            os.close(dirfd)


def _start(path: Path) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """Launch a monitor listening at ``path``; our connection to it and its launcher."""
    address, dirfd = _socket_address(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind(address)
        os.chmod(path, 0o600)
        listener.listen(64)
        monitor = subprocess.Popen(
            [sys.executable, "-I", "-m", "shoal.plugins.namespaces.monitor", str(path),
             str(listener.fileno()), str(theirs.fileno())],
            pass_fds=(listener.fileno(), theirs.fileno()),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        listener.close()
        theirs.close()
        if dirfd is not None:
            os.close(dirfd)
    return ours, monitor


class MonitorLink:
    """One daemon connection to the monitor; requests may come from concurrent tasks."""

    def __init__(self, sock: trio.socket.SocketType, pid: int) -> None:
        self.pid = pid
        self._sock: trio.socket.SocketType | None = sock
        self._send_lock = trio.Lock()

    @classmethod
    async def open(cls, state_root: Path) -> MonitorLink:
        """Connect to the state root's monitor, starting one if none runs."""
        path = state_root / SOCKET_NAME
        for _attempt in range(3):
            launcher = None
            raw = _connect(path)
            if raw is None:
                raw, launcher = _start(path)
            sock = trio.socket.from_stdlib_socket(raw)
            try:
                greeting, fds = await recv(sock)
            finally:
                if launcher is not None:
                    # It exits right after forking the monitor proper.
                    await trio.to_thread.run_sync(launcher.wait)
            for fd in fds:
                os.close(fd)
            if greeting is None:
                # The monitor was exiting as we connected (or failed to start).
                sock.close()
                continue
            link = cls(sock, greeting["pid"])
            if greeting.get("version") != VERSION:
                live = greeting.get("live", 0)
                await link.aclose()
                if live:
                    raise ShoalError(
                        f"the monitor in {state_root} (pid {greeting['pid']}) speaks protocol version "
                        f"{greeting.get('version')}, not {VERSION}, and still runs {live} processes; "
                        "stop them with the previous version first")
                continue
            return link
        raise ShoalError(f"cannot start the container monitor in {state_root}")

    async def request(self, message: dict[str, Any], fds: list[int]) -> trio.socket.SocketType:
        """Send a request with ``fds``; returns our end of its reply socket."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        reply = trio.socket.from_stdlib_socket(ours)
        try:
            rights = array.array("i", [theirs.fileno(), *fds]).tobytes()
            if self._sock is None:
                raise OSError("the connection is closed")
            async with self._send_lock:
                await self._sock.sendmsg([pickle.dumps(message)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        except OSError as e:
            reply.close()
            raise ShoalError(f"the container monitor (pid {self.pid}) is gone: {e}") from e
        except BaseException:
            reply.close()
            raise
        finally:
            theirs.close()
        return reply

    async def aclose(self) -> None:
        """Disconnect; wait for the monitor to exit if it has nothing left to watch."""
        if self._sock is None:
            return
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            pidfd = None
        try:
            try:
                reply = await self.request({"op": "bye"}, [])
                with reply:
                    message, _ = await recv(reply)
                exits = bool(message and message["exits"])
            except ShoalError:
                exits = False
            self._sock.close()
            self._sock = None
            if exits and pidfd is not None:
                # It exits (its socket file removed) once this connection is closed, unless
                # another daemon connected in between.
                with trio.move_on_after(_EXIT_WAIT):
                    await trio.lowlevel.wait_readable(pidfd)
        finally:
            if pidfd is not None:
                os.close(pidfd)
