"""The starter: a short-lived process the monitor forks to create one container process.

It enters or creates the pid namespace (so the process it forks is the namespace's PID 1,
or lands in the container's namespace for an exec), forks the container process and
reports its host PID to the monitor and, with a pidfd, to the daemon. Until the container
process has finished its set-up it answers its requests: writing the user namespace maps
(only a process outside the new user namespace may) and passing a pty master on to the
monitor, which holds it for live restore. Then it exits; the container process is
re-parented to the monitor, a child subreaper, which reaps it.

A new user namespace together with a new pid namespace takes one more fork, inside the
container process: the pid namespace has to be created after the user namespace (which
then owns it, so the container may mount its /proc), and the namespace's PID 1 is the
process forked after that. The intermediate process reports PID 1's host PID here and
exits.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
from typing import Any, NoReturn

from . import cgroupjoin, child, wire
from . import syscalls as sc


def _write_maps(pid: int, request: dict[str, Any]) -> None:
    spec = request["spec"]
    for name, mappings in (("uid_map", spec.uid_mappings), ("gid_map", spec.gid_mappings)):
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)


def _enter_pid_namespace(request: dict[str, Any]) -> None:
    """Make the next fork land in the process's pid namespace (unless the child makes it)."""
    if request["op"] == "exec":
        target = request["target"]
        theirs, ours = os.stat(f"/proc/{target}/ns/pid"), os.stat("/proc/self/ns/pid")
        path = f"/proc/{target}/ns/pid" if theirs.st_ino != ours.st_ino else ""
        new = False
    else:
        namespaces = request["spec"].namespaces
        new = "pid" in namespaces and namespaces["pid"] is None and not child.pid_one_forked_inside(namespaces)
        path = namespaces.get("pid") or ""
    if new:
        sc.unshare(sc.CLONE_NEWPID)
    elif path:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(fd, sc.CLONE_NEWPID)
        finally:
            os.close(fd)


def _run_child(request: dict[str, Any], stdio: dict[int, int], ctl: socket.socket, peer: socket.socket) -> NoReturn:
    if request["op"] == "create":
        child.container_init(request["spec"], stdio, request["terminal"], request["etc_sources"], ctl, peer,
                             request["init_fd"])
    else:
        child.exec_in_container(request["target"], request["process"], stdio, request["terminal"], ctl, peer)
    os._exit(child.SETUP_FAILED)


def _place(pid: int, request: dict[str, Any]) -> str:
    """Write the container process's PID into the cgroup.procs files it cannot move itself
    through (see ``cgroupjoin``); "" or the error. Done here, while the process sets up."""
    if request["op"] != "create":
        return ""
    for path in request["spec"].cgroup_procs:
        if cgroupjoin.tasks_file(path) is not None:
            continue
        try:
            with open(path, "w") as f:
                f.write(str(pid))
        except OSError as e:
            return f"cannot place the process in {path}: {e.strerror or e}"
    return ""


def _report(pid: int, held: list[str], ctl: socket.socket, monitor: socket.socket) -> None:
    # The monitor first: it must know the PID before the process can become its child.
    wire.send(monitor, {"pid": pid})
    pidfd = os.pidfd_open(pid)
    try:
        wire.send(ctl, {"pid": pid, "held": held}, [pidfd])
    finally:
        os.close(pidfd)


def run_starter(request: dict[str, Any], ctl: socket.socket, stdio: dict[int, int], monitor: socket.socket) -> NoReturn:
    """Body of a freshly forked starter; never returns."""
    # No collections in a forked copy of the monitor: they would copy shared pages.
    gc.disable()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = 0
    reported = False
    try:
        _enter_pid_namespace(request)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            ours.close()
            monitor.close()
            _run_child(request, stdio, ctl, theirs)
        theirs.close()
        for fd in set(stdio.values()):
            os.close(fd)
        intermediate = request["op"] == "create" and child.pid_one_forked_inside(request["spec"].namespaces)
        placement = ""
        if not intermediate:
            _report(pid, request["held"], ctl, monitor)
            reported = True
            ctl.close()
            placement = _place(pid, request)
        while True:
            message, got = wire.recv(ours, 4096)
            if message is None:
                break
            if message.get("userns"):
                _write_maps(pid, request)
                wire.send(ours, {"mapped": True})
            elif "pid" in message:
                _report(message["pid"], request["held"], ctl, monitor)
                reported = True
                ctl.close()
                placement = _place(message["pid"], request)
            elif message.get("cgroup"):
                wire.send(ours, {"error": placement} if placement else {"placed": True})
            elif message.get("pty"):
                wire.send(monitor, {"pty": True}, got)
                os.close(got[0])
        if intermediate:
            os.waitpid(pid, 0)
    except BaseException as e:  # noqa: BLE001 - every failure must reach the daemon
        if pid and not reported:
            os.kill(pid, signal.SIGKILL)
        if not reported:
            try:
                wire.send(ctl, {"error": f"cannot start the container process: {e}", "code": child.SETUP_FAILED})
            except OSError:
                pass
        os._exit(child.SETUP_FAILED)
    os._exit(0)
