"""The isolation slot provider: containers from Linux namespaces, driven from trio.

Process tree::

    shoald          monitor (one per state root; own session; outlives the daemon)
                       ├─ starter (per process, only while it starts; see ``starter``)
                       ├─ container process (PID 1 of its pid namespace) ── program
                       └─ exec'd process ...

The monitor (see ``monitor``) is a child subreaper: every container process ends up its
child, it reaps them, records each exit status in ``exit.json`` and holds their output's
read ends, at a cost of a few descriptors per container instead of a process each.

For each new process the daemon passes the monitor a control socket and a watch socket.
On the control socket the starter reports the host PID (with a pidfd, so no PID can be
reused under us) and the container process reports ``ready`` once its namespaces and
mounts exist, then waits for ``start``; a failed exec is reported on the same socket, which
closes on a successful exec (close-on-exec). The watch socket receives the exit status
once the monitor has reaped the process and recorded it, so ``wait`` needs no polling and
the status is on disk by then; a restarted daemon gets a new watch socket (and copies of
the held descriptors) from the monitor, which is how live restore keeps exit codes and
output.
"""

from __future__ import annotations

import os
import pickle
import secrets
import shutil
import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from signal import pidfd_send_signal
from typing import Any

import trio

from shoal.errors import ShoalError
from shoal.runtime import ProcessSpec, RuntimeSpec
from shoal.slots import Stdio

from . import initbin, status
from .errors import ExecError
from .link import MonitorLink, recv


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


def _socketpair() -> tuple[int, int]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    return ours.detach(), theirs.detach()


def _close_all(messages: list[tuple[dict[str, Any], list[int]]]) -> None:
    for _message, fds in messages:
        for fd in fds:
            os.close(fd)


class NamespaceProcess:
    """A container's first process or an exec'd process (``shoal.slots.ContainerProcess``)."""

    def __init__(self, *, pid: int, state_dir: str, pidfd: int | None, watch: int,
                 held: list[str], ctl: trio.socket.SocketType | None = None,
                 taken: dict[str, int] | None = None) -> None:
        self.pid = pid
        self.state_dir = state_dir
        self.pty_master: int | None = None
        self._pidfd = pidfd
        # Raw descriptors rather than socket objects: a handle the engine drops without
        # closing (on shutdown) must not leave warnings behind.
        self._watch: int | None = watch
        self._held = held
        self._taken = taken or {}
        self._ctl = ctl
        self._start_time = _start_time(pid)
        self._exit_code: int | None = None
        self._wait_lock = trio.Lock()
        # Messages of the container process that arrived before the starter's report.
        self._early: list[tuple[dict[str, Any], list[int]]] = []

    async def start(self) -> None:
        """Let the created process exec its program; raises ``ExecError`` if it could not."""
        if self._ctl is None:
            raise ShoalError(f"process {self.pid} is already started")
        ctl, self._ctl = self._ctl, None
        try:
            await ctl.sendmsg([pickle.dumps({"start": True})])
            message, fds = await recv(ctl)
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
                if self._watch is None:
                    raise ShoalError(f"process {self.pid} is closed")
                await trio.lowlevel.wait_readable(self._watch)
                data = os.read(self._watch, 4096)  # one datagram, or b"" if the monitor died
                os.close(self._watch)
                self._watch = None
                code = pickle.loads(data).get("exit") if data else status.read_status(self.state_dir)
                if code is None:
                    raise ShoalError(f"process {self.pid} ended without a recorded exit status (the monitor died)")
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
            "state_dir": self.state_dir,
            "held": list(self._held),
        }

    def take_stdio(self) -> dict[str, int]:
        """The stdout/stderr read ends and pty master the monitor held, after ``restore``.

        A restarted daemon calls this to resume reading a container's output; the returned
        descriptors are close-on-exec and belong to the caller. A process this daemon
        created (rather than restored) has nothing to take: the daemon has its own ends.
        """
        taken, self._taken = self._taken, {}
        return taken

    def close(self) -> None:
        """Release this handle's descriptors (the process itself is not affected)."""
        _close_all(self._early)
        self._early = []
        for fd in (self._pidfd, self._watch, self.pty_master, *self._taken.values()):
            if fd is not None:
                os.close(fd)
        self._pidfd = None
        self._watch = None
        self.pty_master = None
        self._taken = {}
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None


class NamespaceIsolation:
    """Isolation slot provider backed by namespaces and the state root's monitor.

    Args:
        state_root: directory for per-process state (exit status, /etc files) and the
            monitor's socket; it must survive a daemon restart, not a reboot (a directory
            under /run fits).
    """

    def __init__(self, state_root: str | os.PathLike[str]) -> None:
        self.state_root = Path(state_root)
        self._link: MonitorLink | None = None
        self._init_fd: int | None = None
        self._init_built = False
        self._init_lock = trio.Lock()

    @property
    def monitor_pid(self) -> int | None:
        """PID of the monitor this provider talks to (None while closed)."""
        return self._link.pid if self._link else None

    async def open(self) -> None:
        """Connect to the state root's monitor, starting one if none runs."""
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self._link = await MonitorLink.open(self.state_root)

    async def aclose(self) -> None:
        """Disconnect from the monitor; running containers are not touched.

        A monitor with no process left exits, and this waits for it.
        """
        if self._link is not None:
            link, self._link = self._link, None
            await link.aclose()
        if self._init_fd is not None:
            os.close(self._init_fd)
            self._init_fd = None
        self._init_built = False

    async def _init_binary(self) -> int | None:
        """The compiled --init (see ``initbin``), built on first use; None without a compiler."""
        async with self._init_lock:
            if not self._init_built:
                self._init_fd = await trio.to_thread.run_sync(initbin.build)
                self._init_built = True
        return self._init_fd

    async def __aenter__(self) -> NamespaceIsolation:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _require_link(self) -> MonitorLink:
        if self._link is None:
            raise ShoalError("the namespaces isolation provider is not open")
        return self._link

    async def _spawn(self, request: dict[str, Any], stdio: Stdio, state_dir: Path) -> tuple[NamespaceProcess, trio.socket.SocketType]:
        link = self._require_link()
        slots = [n for n, fd in enumerate((stdio.stdin, stdio.stdout, stdio.stderr)) if fd is not None and not request["terminal"]]
        fds = [(stdio.stdin, stdio.stdout, stdio.stderr)[n] for n in slots]
        request["stdio_slots"] = slots
        request["state_dir"] = str(state_dir)
        init_fd = await self._init_binary() if request["op"] == "create" and request["spec"].init else None
        request["init_binary"] = init_fd is not None
        if init_fd is not None:
            fds.append(init_fd)
        watch, watch_theirs = _socketpair()
        try:
            ctl = await link.request(request, [watch_theirs, *fds])
        except BaseException:
            os.close(watch)
            raise
        finally:
            os.close(watch_theirs)
        # The container process may speak before its starter has reported: keep its messages.
        early: list[tuple[dict[str, Any], list[int]]] = []
        try:
            while True:
                message, got = await recv(ctl)
                if message is None or "pid" in message:
                    break
                early.append((message, got))
        except BaseException:
            ctl.close()
            os.close(watch)
            _close_all(early)
            raise
        if message is None:
            ctl.close()
            os.close(watch)
            errors = [m["error"] for m, _ in early if "error" in m]
            _close_all(early)
            raise ShoalError(errors[0] if errors else "cannot start the container process: the monitor ended")
        process = NamespaceProcess(pid=message["pid"], state_dir=str(state_dir), pidfd=got[0], watch=watch,
                                   held=message["held"])
        process._early = early
        return process, ctl

    async def _abandon(self, process: NamespaceProcess) -> None:
        """Kill a half-made process and wait until it is reaped (so are its mounts)."""
        process.kill(signal.SIGKILL)
        with trio.CancelScope(shield=True):
            try:
                await process.wait()
            except ShoalError:
                pass
        process.close()

    async def _handshake(self, process: NamespaceProcess, ctl: trio.socket.SocketType, until: str) -> None:
        """Read the process's messages until ``until`` (or the end of stream for "exec")."""
        while True:
            if process._early:
                message, fds = process._early.pop(0)
            else:
                message, fds = await recv(ctl)
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
            # The process ran and failed to exec: the monitor records its status as usual.
            if spawned is not None:
                spawned.close()
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

    async def _watch(self, state: Mapping[str, Any]) -> tuple[int, dict[str, int]] | None:
        """A new watch socket and copies of the held descriptors of a process the monitor
        still tracks; None if it does not (the process ended and its status is on disk)."""
        link = self._require_link()
        watch, theirs = _socketpair()
        try:
            reply = await link.request({"op": "watch", "pid": state["pid"], "state_dir": state["state_dir"]}, [theirs])
            with reply:
                message, fds = await recv(reply)
        except BaseException:
            os.close(watch)
            raise
        finally:
            os.close(theirs)
        if not message or not message.get("running"):
            os.close(watch)
            for fd in fds:
                os.close(fd)
            return None
        return watch, dict(zip(message["held"], fds))

    async def restore(self, state: Mapping[str, Any]) -> NamespaceProcess | None:
        """Re-adopt a process from ``state()``; None if it has ended (see ``recorded_exit``)."""
        pidfd = _open_pidfd(state["pid"], state["start_time"])
        if pidfd is None:
            return None
        try:
            watched = await self._watch(state)
        except BaseException:
            os.close(pidfd)
            raise
        if watched is None:
            os.close(pidfd)
            return None
        watch, taken = watched
        return NamespaceProcess(pid=state["pid"], state_dir=state["state_dir"], pidfd=pidfd, watch=watch,
                                held=list(state.get("held", ())), taken=taken)

    async def recorded_exit(self, state: Mapping[str, Any]) -> int | None:
        """The exit status of a process that ended, possibly while the daemon was away.

        Waits for a process the monitor has not reaped yet; None if nothing was ever
        recorded (the monitor itself was killed).
        """
        watched = await self._watch(state)
        if watched is not None:
            watch, taken = watched
            process = NamespaceProcess(pid=state["pid"], state_dir=state["state_dir"], pidfd=None, watch=watch,
                                       held=[], taken=taken)
            try:
                return await process.wait()
            except ShoalError:
                return None
            finally:
                process.close()
        return status.read_status(state["state_dir"])

    def forget(self, state: Mapping[str, Any]) -> None:
        """Delete a finished process's state (its recorded exit status included)."""
        shutil.rmtree(state["state_dir"], ignore_errors=True)
