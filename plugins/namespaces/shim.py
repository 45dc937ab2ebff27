"""The per-container shim: the parent of a container's first process (or of an exec'd one).

The spawner forks one shim per process. The shim leaves the daemon's session, enters or
creates the pid namespace (so the process it forks is the namespace's PID 1), forks the
container process, answers its requests (user namespace maps, the pty master), then blocks
in ``waitpid`` and records the exit status in ``exit.json`` in the process's state
directory. It holds a read end of the stdout/stderr pipes and the pty master at fixed
descriptor numbers, so the container never sees EPIPE or a hang-up while the daemon is away,
and a restarted daemon takes them back with ``pidfd_getfd``.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import stat
from typing import Any, NoReturn

from . import child, wire
from . import syscalls as sc

#: Descriptor numbers in the shim of what it holds for the daemon.
HELD_FDS = {"stdout": 100, "stderr": 101, "pty": 102}
STATUS_FILE = "exit.json"


def write_status(state_dir: str, code: int) -> None:
    """Record the exit status atomically."""
    tmp = os.path.join(state_dir, STATUS_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"exit_code": code}, f)
    os.replace(tmp, os.path.join(state_dir, STATUS_FILE))


def read_status(state_dir: str) -> int | None:
    """The recorded exit status, or None if none was recorded (yet)."""
    try:
        with open(os.path.join(state_dir, STATUS_FILE)) as f:
            return int(json.load(f)["exit_code"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _write_maps(pid: int, request: dict[str, Any]) -> None:
    spec = request["spec"]
    for name, mappings in (("uid_map", spec.uid_mappings), ("gid_map", spec.gid_mappings)):
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)


def _enter_pid_namespace(request: dict[str, Any]) -> None:
    if request["op"] == "exec":
        target = request["target"]
        theirs, ours = os.stat(f"/proc/{target}/ns/pid"), os.stat("/proc/self/ns/pid")
        path = f"/proc/{target}/ns/pid" if theirs.st_ino != ours.st_ino else ""
        new = False
    else:
        namespaces = request["spec"].namespaces
        new = "pid" in namespaces and namespaces["pid"] is None
        path = namespaces.get("pid") or ""
    if new:
        sc.unshare(sc.CLONE_NEWPID)
    elif path:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(fd, sc.CLONE_NEWPID)
        finally:
            os.close(fd)


def _hold_pipes(stdio: dict[int, int]) -> list[str]:
    held = []
    for n, name in ((1, "stdout"), (2, "stderr")):
        fd = stdio.get(n)
        if fd is None or not stat.S_ISFIFO(os.fstat(fd).st_mode) or name in held:
            continue
        if n == 2 and stdio.get(1) is not None and os.fstat(stdio[1]).st_ino == os.fstat(fd).st_ino:
            continue  # stdout and stderr share one pipe
        reader = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.dup2(reader, HELD_FDS[name], inheritable=False)
        os.close(reader)
        held.append(name)
    return held


def _run_child(request: dict[str, Any], stdio: dict[int, int], ctl: socket.socket, peer: socket.socket) -> NoReturn:
    if request["op"] == "create":
        child.container_init(request["spec"], stdio, request["terminal"], request["etc_sources"], ctl, peer)
    else:
        child.exec_in_container(request["target"], request["process"], stdio, request["terminal"], ctl)
    os._exit(child.SETUP_FAILED)


def run_shim(request: dict[str, Any], fds: list[int]) -> NoReturn:
    """Body of a freshly forked shim; never returns."""
    # No collections in a process that lives as long as its container: they would touch
    # (and so copy) pages it shares with the spawner and the other shims.
    gc.disable()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    ctl = socket.socket(fileno=fds[0])
    state_dir = request["state_dir"]
    pid = 0
    try:
        os.setsid()
        stdio = dict(zip(request["stdio_slots"], fds[1:]))
        _enter_pid_namespace(request)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            ours.close()
            _run_child(request, stdio, ctl, theirs)
        theirs.close()
        pidfd = os.pidfd_open(pid)
        self_fd = os.pidfd_open(os.getpid())
        held = _hold_pipes(stdio)
        for fd in set(stdio.values()):
            os.close(fd)
        wire.send(ctl, {"pid": pid, "shim": os.getpid(), "held": held}, [pidfd, self_fd])
        os.close(pidfd)
        os.close(self_fd)
        ctl.close()
        while True:
            message, got = wire.recv(ours, 4096)
            if message is None:
                break
            if message.get("userns"):
                _write_maps(pid, request)
                wire.send(ours, {"mapped": True})
            elif message.get("pty"):
                os.dup2(got[0], HELD_FDS["pty"], inheritable=False)
                os.close(got[0])
        ours.close()
    except BaseException as e:  # noqa: BLE001 - the shim must always record a status
        if pid:
            os.kill(pid, signal.SIGKILL)
        else:
            try:
                wire.send(ctl, {"error": f"shim: {e}", "code": child.SETUP_FAILED})
            except OSError:
                pass
            write_status(state_dir, child.SETUP_FAILED)
            os._exit(child.SETUP_FAILED)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    write_status(state_dir, child.docker_exit_code(status))
    os._exit(0)
