"""The isolation slot provider: containers from Linux namespaces, driven from trio.

Process tree::

    shoald ── spawner (single-threaded, warm; see ``spawner``)
                 └─ shim (one per container or exec; own session; records the exit status)
                       └─ container process (PID 1 of its pid namespace) ── program

The daemon talks to each new process over its own control socket: the shim reports the
host PIDs (with pidfds, so no PID can be reused under us), the container process reports
``ready`` after its namespaces and mounts exist and waits for ``start``; a failed exec is
reported on the same socket, which closes on a successful exec (close-on-exec).
Waiting uses the shim's pidfd: the shim exits right after writing ``exit.json``, so the
status is on disk by the time the pidfd is readable. That file outlives the daemon, which is
how live restore keeps exit codes.
"""

from __future__ import annotations

import array
import os
import pickle
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from signal import pidfd_send_signal
from typing import Any

import trio

from shoal.errors import InvalidArgument, ShoalError
from shoal.runtime import ProcessSpec, RuntimeSpec
from shoal.slots import Stdio

from . import shim, syscalls, wire
from .errors import ExecError


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])


def _open_pidfd(pid: int, start_time: int) -> int | None:
    """A pidfd for ``pid`` if it is still the process that started at ``start_time``."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    # Checked after opening: from here on the pidfd pins the process we verified.
    if _start_time(pid) != start_time:
        os.close(fd)
        return None
    return fd


async def _recv(sock: trio.socket.SocketType) -> tuple[dict[str, Any] | None, list[int]]:
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


def _close_all(messages: list[tuple[dict[str, Any], list[int]]]) -> None:
    for _message, fds in messages:
        for fd in fds:
            os.close(fd)


class NamespaceProcess:
    """A container's first process or an exec'd process (``shoal.slots.ContainerProcess``)."""

    def __init__(self, *, pid: int, shim_pid: int, state_dir: str, pidfd: int | None, shim_pidfd: int,
                 held: list[str], ctl: trio.socket.SocketType | None = None) -> None:
        self.pid = pid
        self.shim_pid = shim_pid
        self.state_dir = state_dir
        self.pty_master: int | None = None
        self._pidfd = pidfd
        self._shim_pidfd = shim_pidfd
        self._held = held
        self._ctl = ctl
        self._start_time = _start_time(pid)
        self._shim_start_time = _start_time(shim_pid)
        self._exit_code: int | None = None
        self._wait_lock = trio.Lock()
        # Messages of the container process that arrived before its shim's report.
        self._early: list[tuple[dict[str, Any], list[int]]] = []

    async def start(self) -> None:
        """Let the created process exec its program; raises ``ExecError`` if it could not."""
        if self._ctl is None:
            raise ShoalError(f"process {self.pid} is already started")
        ctl, self._ctl = self._ctl, None
        try:
            await ctl.sendmsg([pickle.dumps({"start": True})])
            message, fds = await _recv(ctl)
        finally:
            ctl.close()
        for fd in fds:
            os.close(fd)
        if message is not None and "error" in message:
            raise ExecError(message["error"], message["code"])

    async def wait(self) -> int:
        """Wait for the process to end; its status as Docker reports it."""
        async with self._wait_lock:
            if self._exit_code is None:
                await trio.lowlevel.wait_readable(self._shim_pidfd)
                code = shim.read_status(self.state_dir)
                if code is None:
                    raise ShoalError(f"the shim of process {self.pid} ended without recording an exit status")
                self._exit_code = code
            return self._exit_code

    def kill(self, signal: int) -> None:
        """Send ``signal`` to the process; one that already ended is not an error."""
        if self._pidfd is None:
            return
        try:
            pidfd_send_signal(self._pidfd, signal)
        except ProcessLookupError:
            pass

    def state(self) -> dict[str, Any]:
        """What ``NamespaceIsolation.restore`` needs to re-adopt this process."""
        return {
            "pid": self.pid,
            "start_time": self._start_time,
            "shim_pid": self.shim_pid,
            "shim_start_time": self._shim_start_time,
            "state_dir": self.state_dir,
            "held": list(self._held),
        }

    def take_stdio(self) -> dict[str, int]:
        """Copies of the stdout/stderr read ends and the pty master the shim holds.

        A restarted daemon calls this to resume reading a container's output; the returned
        descriptors are close-on-exec and belong to the caller.
        """
        names = list(self._held)
        if "pty" not in names and os.path.exists(f"/proc/{self.shim_pid}/fd/{shim.HELD_FDS['pty']}"):
            names.append("pty")
        taken = {}
        for name in names:
            try:
                taken[name] = syscalls.pidfd_getfd(self._shim_pidfd, shim.HELD_FDS[name])
            except OSError:
                continue
        return taken

    def close(self) -> None:
        """Release this handle's descriptors (the process itself is not affected)."""
        _close_all(self._early)
        self._early = []
        for fd in (self._pidfd, self._shim_pidfd, self.pty_master):
            if fd is not None:
                os.close(fd)
        self._pidfd = None
        self.pty_master = None
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None



class NamespaceIsolation:
    """Isolation slot provider backed by namespaces, a warm spawner and per-container shims.

    Args:
        state_root: directory for per-process state (exit status, /etc files); it must
            survive a daemon restart, not a reboot (a directory under /run fits).
    """

    def __init__(self, state_root: str | os.PathLike[str]) -> None:
        self.state_root = Path(state_root)
        self._spawner: subprocess.Popen[bytes] | None = None
        self._sock: trio.socket.SocketType | None = None

    async def open(self) -> None:
        """Start the spawner process (once; about 50 ms of interpreter start-up)."""
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._spawner = subprocess.Popen(
                [sys.executable, "-I", "-m", "shoal.plugins.namespaces.spawner", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self._sock = trio.socket.from_stdlib_socket(ours)

    async def aclose(self) -> None:
        """Stop the spawner; running containers and their shims are not touched."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._spawner is not None:
            spawner, self._spawner = self._spawner, None
            await trio.to_thread.run_sync(spawner.wait)

    async def __aenter__(self) -> NamespaceIsolation:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _spawn(self, request: dict[str, Any], stdio: Stdio, state_dir: Path) -> tuple[NamespaceProcess, trio.socket.SocketType]:
        if self._sock is None:
            raise ShoalError("the namespaces isolation provider is not open")
        slots = [n for n, fd in enumerate((stdio.stdin, stdio.stdout, stdio.stderr)) if fd is not None and not request["terminal"]]
        fds = [(stdio.stdin, stdio.stdout, stdio.stderr)[n] for n in slots]
        request["stdio_slots"] = slots
        request["state_dir"] = str(state_dir)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ctl = trio.socket.from_stdlib_socket(ours)
        try:
            rights = array.array("i", [theirs.fileno(), *fds]).tobytes()
            await self._sock.sendmsg([pickle.dumps(request)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        except BaseException:
            ctl.close()
            raise
        finally:
            theirs.close()
        # The container process may speak before its shim has reported: keep its messages.
        early: list[tuple[dict[str, Any], list[int]]] = []
        try:
            while True:
                message, got = await _recv(ctl)
                if message is None or "pid" in message:
                    break
                early.append((message, got))
        except BaseException:
            ctl.close()
            _close_all(early)
            raise
        if message is None:
            ctl.close()
            errors = [m["error"] for m, _ in early if "error" in m]
            _close_all(early)
            raise ShoalError(f"cannot start the container process: {errors[0] if errors else 'the spawner ended'}")
        process = NamespaceProcess(
            pid=message["pid"], shim_pid=message["shim"], state_dir=str(state_dir),
            pidfd=got[0], shim_pidfd=got[1], held=message["held"],
        )
        process._early = early
        return process, ctl

    async def _abandon(self, process: NamespaceProcess) -> None:
        """Kill a half-made process and wait until its shim is gone (so are its mounts)."""
        process.kill(signal.SIGKILL)
        with trio.CancelScope(shield=True):
            await trio.lowlevel.wait_readable(process._shim_pidfd)
        process.close()

    async def _handshake(self, process: NamespaceProcess, ctl: trio.socket.SocketType, until: str) -> None:
        """Read the process's messages until ``until`` (or the end of stream for "exec")."""
        while True:
            if process._early:
                message, fds = process._early.pop(0)
            else:
                message, fds = await _recv(ctl)
            if message is None:
                if until == "eof":
                    return
                raise ShoalError("the container process ended during set-up")
            if message.get("pty"):
                process.pty_master = fds[0]
            elif "error" in message:
                raise ExecError(message["error"], message["code"])
            elif until in message:
                return

    async def create(self, spec: RuntimeSpec, stdio: Stdio) -> NamespaceProcess:
        """Create the container's first process, stopped before exec (see ``start``)."""
        if spec.namespaces.get("user", "") is None and spec.namespaces.get("pid", "") is None:
            # The shim creates the pid namespace in the host's user namespace, and /proc can
            # only be mounted by the user namespace that owns the pid namespace.
            raise InvalidArgument("a new user namespace together with a new pid namespace is not supported")
        state_dir = self.state_root / spec.id
        try:
            state_dir.mkdir(mode=0o700)
        except FileExistsError:
            raise ShoalError(f"container {spec.id} already has isolation state in {state_dir}") from None
        process = None
        ctl = None
        try:
            etc_sources = self._write_etc_files(state_dir, spec.etc_files)
            request = {"op": "create", "spec": spec, "etc_sources": etc_sources,
                       "terminal": stdio.terminal or spec.process.terminal}
            process, ctl = await self._spawn(request, stdio, state_dir)
            await self._handshake(process, ctl, "ready")
        except BaseException:
            if ctl is not None:
                ctl.close()
            if process is not None:
                await self._abandon(process)
            shutil.rmtree(state_dir, ignore_errors=True)
            raise
        process._ctl = ctl
        return process

    @staticmethod
    def _write_etc_files(state_dir: Path, files: Mapping[str, str]) -> dict[str, str]:
        # Bind-mounted from here rather than written into the rootfs: the image's layer
        # stays untouched, a read-only rootfs still gets them, and the engine can rewrite
        # /etc/hosts in place later (when a network is connected).
        sources = {}
        etc = state_dir / "etc"
        for path, content in files.items():
            etc.mkdir(exist_ok=True)
            source = etc / path.strip("/").replace("/", "_")
            source.write_text(content)
            source.chmod(0o644)
            sources[path] = str(source)
        return sources

    async def exec(self, target: NamespaceProcess, process: ProcessSpec, stdio: Stdio) -> NamespaceProcess:
        """Run another process in the namespaces and cgroups of a running container."""
        if target._pidfd is None or _start_time(target.pid) != target._start_time:
            raise ShoalError(f"container process {target.pid} is not running")
        state_dir = Path(target.state_dir) / f"exec-{secrets.token_hex(6)}"
        state_dir.mkdir(mode=0o700)
        spawned = None
        ctl = None
        try:
            request = {"op": "exec", "target": target.pid, "process": process,
                       "terminal": stdio.terminal or process.terminal}
            spawned, ctl = await self._spawn(request, stdio, state_dir)
            await self._handshake(spawned, ctl, "eof")
        except ExecError:
            # The process ran and failed to exec: its shim records the status as usual.
            raise
        except BaseException:
            if spawned is not None:
                await self._abandon(spawned)
            shutil.rmtree(state_dir, ignore_errors=True)
            raise
        finally:
            if ctl is not None:
                ctl.close()
        return spawned

    async def restore(self, state: Mapping[str, Any]) -> NamespaceProcess | None:
        """Re-adopt a process from ``state()``; None if it has ended (see ``recorded_exit``)."""
        pidfd = _open_pidfd(state["pid"], state["start_time"])
        if pidfd is None:
            return None
        shim_pidfd = _open_pidfd(state["shim_pid"], state["shim_start_time"])
        if shim_pidfd is None:
            os.close(pidfd)
            return None
        process = NamespaceProcess(pid=state["pid"], shim_pid=state["shim_pid"], state_dir=state["state_dir"],
                                   pidfd=pidfd, shim_pidfd=shim_pidfd, held=list(state.get("held", ())))
        return process

    async def recorded_exit(self, state: Mapping[str, Any]) -> int | None:
        """The exit status of a process that ended, possibly while the daemon was away.

        Waits for a shim that is still writing it; None if nothing was ever recorded (the
        shim itself was killed).
        """
        shim_pidfd = _open_pidfd(state["shim_pid"], state["shim_start_time"])
        if shim_pidfd is not None:
            try:
                await trio.lowlevel.wait_readable(shim_pidfd)
            finally:
                os.close(shim_pidfd)
        return shim.read_status(state["state_dir"])

    def forget(self, state: Mapping[str, Any]) -> None:
        """Delete a finished process's state (its recorded exit status included)."""
        shutil.rmtree(state["state_dir"], ignore_errors=True)
