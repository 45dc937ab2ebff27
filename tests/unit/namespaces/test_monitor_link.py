"""The daemon side of the monitor protocol against a stand-in monitor: greeting, version
check, stale sockets, and the ``bye`` exchange (real unix sockets, no root needed)."""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path

import pytest
import trio

from shoal.errors import ShoalError
from shoal.plugins.namespaces import wire
from shoal.plugins.namespaces.link import MonitorLink, recv
from shoal.plugins.namespaces.monitor import SOCKET_NAME, VERSION


async def fake_monitor(path: Path, greeting: dict, task_status=trio.TASK_STATUS_IGNORED) -> list[str]:
    """Accept one daemon, greet it, answer its requests; the ops it sent."""
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    await listener.bind(str(path))
    listener.listen(1)
    task_status.started()
    ops = []
    with listener:
        conn, _ = await listener.accept()
        with conn:
            await conn.send(pickle.dumps(greeting))
            while True:
                message, fds = await recv(conn)
                if message is None:
                    break
                ops.append(message["op"])
                reply = socket.socket(fileno=fds[0])
                with reply:
                    wire.send(reply, {"exits": False})
                for fd in fds[1:]:
                    os.close(fd)
    return ops


async def test_a_monitor_of_another_version_with_processes_is_refused(tmp_path):
    path = tmp_path / SOCKET_NAME
    async with trio.open_nursery() as nursery:
        await nursery.start(fake_monitor, path, {"version": VERSION + 1, "pid": os.getpid(), "live": 3})
        with pytest.raises(ShoalError, match=rf"speaks protocol version {VERSION + 1}, not {VERSION}, and still runs 3"):
            await MonitorLink.open(tmp_path)


async def test_a_matching_monitor_is_reused_and_told_goodbye(tmp_path):
    path = tmp_path / SOCKET_NAME
    ops: list[str] = []

    async def serve(task_status=trio.TASK_STATUS_IGNORED):
        ops.extend(await fake_monitor(path, {"version": VERSION, "pid": os.getpid(), "live": 0}, task_status))

    async with trio.open_nursery() as nursery:
        await nursery.start(serve)
        link = await MonitorLink.open(tmp_path)
        assert link.pid == os.getpid()
        await link.aclose()  # the monitor says it stays: no waiting for it
    assert ops == ["bye"]


async def test_a_stale_socket_file_is_replaced(tmp_path):
    path = tmp_path / SOCKET_NAME
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stale.bind(str(path))
    stale.close()  # bound, never listening: connecting is refused
    link = await MonitorLink.open(tmp_path)
    try:
        assert link.pid != os.getpid()
    finally:
        await link.aclose()
    assert not path.exists()  # the real monitor removed it on its way out
