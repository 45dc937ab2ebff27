"""The monitor: one long-lived, single-threaded process that starts, reaps and records every
container process of a state root, and holds their output for live restore.

Why one monitor rather than a process per container: a per-container parent (a forked copy
of the Python interpreter) costs over a megabyte of PSS per container, mostly pages the
copy dirties just by running Python. The monitor's bookkeeping per container is a few
descriptors and a small record, so fifty idle containers cost about what one does. A C
helper per container would be small too, but needs a compiler at install time, a second
implementation of the wait/record/hold logic and a fallback for hosts without gcc; the
monitor keeps everything in Python and in one place.

How it works:

* It is a child subreaper (``PR_SET_CHILD_SUBREAPER``): it forks a short-lived starter per
  process (see ``starter``), the starter forks the container process and exits, and the
  container process is re-parented to the monitor, which reaps it on ``SIGCHLD``, writes
  ``exit.json`` (see ``status``) and tells the daemon over the process's watch socket.
* It holds a read end of every container's stdout/stderr pipes and its pty master, so a
  container never sees EPIPE or a hang-up while the daemon is away; a restarted daemon gets
  copies back through the ``watch`` request.
* It runs in its own session, detached from the daemon (started through a launcher that
  forks it and exits), and survives the daemon: a restarted daemon connects to the
  unix socket ``monitor.sock`` in the state root instead of starting a new monitor, and
  checks the protocol version in the greeting. A monitor with no processes left exits when
  its last daemon connection closes (and removes the socket).
* It imports everything a container's set-up needs before forking anything, so a start
  costs a fork or two of a warm interpreter and no imports; ``gc.freeze()`` keeps those
  objects out of the collector so the forked starters share their pages.

Protocol (SOCK_SEQPACKET, messages as in ``wire``): on connecting, the monitor sends
``{"version", "pid", "live"}``. Each request carries its reply socket as its first
descriptor:

* ``create``/``exec`` with ``[ctl, watch, *stdio]``: the starter and the container process
  speak on ``ctl`` (see ``isolation``); ``watch`` receives ``{"exit": code}`` once the
  process has been reaped and its status recorded.
* ``watch`` with ``[reply, watch]``: re-attach to a running process; the reply is
  ``{"running": True, "held": [...]}`` with copies of the held descriptors, or
  ``{"running": False}`` (its status, if any, is then on disk).
* ``bye`` with ``[reply]``: the reply ``{"exits": bool}`` tells the daemon whether the
  monitor exits once this connection closes (no process left, no other daemon connected).
"""

from __future__ import annotations

import gc
import os
import selectors
import signal
import socket
import stat
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from . import child, starter, status, wire
from . import syscalls as sc

#: Bumped whenever the protocol above changes; a daemon refuses a monitor of another version.
VERSION = 1
SOCKET_NAME = "monitor.sock"


@dataclass
class Starting:
    """A starter in flight: the socket it reports on and the process it starts."""

    report: socket.socket
    tracked: Tracked
    reading: bool = True


@dataclass
class Tracked:
    """What the monitor keeps per container process (or per exec'd process)."""

    state_dir: str
    watchers: list[socket.socket]
    held: dict[str, int] = field(default_factory=dict)
    pid: int = 0

    def notify(self, message: dict[str, Any]) -> None:
        """Tell every watcher and drop them; a daemon that went away is no error."""
        for watcher in self.watchers:
            try:
                wire.send(watcher, message)
            except OSError:
                pass
            watcher.close()
        self.watchers = []

    def release(self) -> None:
        """Close everything held for the process."""
        for watcher in self.watchers:
            watcher.close()
        self.watchers = []
        for fd in self.held.values():
            os.close(fd)
        self.held = {}


def hold_pipes(stdio: dict[int, int]) -> dict[str, int]:
    """Open our own read ends of the stdout/stderr pipes (one if both share a pipe)."""
    held: dict[str, int] = {}
    seen: set[int] = set()
    for n, name in ((1, "stdout"), (2, "stderr")):
        fd = stdio.get(n)
        if fd is None:
            continue
        st = os.fstat(fd)
        if not stat.S_ISFIFO(st.st_mode) or st.st_ino in seen:
            continue
        seen.add(st.st_ino)
        held[name] = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    return held


class Monitor:
    """The monitor's event loop and bookkeeping (see the module docstring)."""

    def __init__(self, path: str, listener: socket.socket, first: socket.socket) -> None:
        self.path = path
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.clients: set[socket.socket] = set()
        self.starting: dict[int, Starting] = {}  # by starter PID
        #: container (or exec'd) process PID -> its record
        self.running: dict[int, Tracked] = {}
        self._wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        # A Python-level handler so the wake-up descriptor is written; reaping happens below.
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._reap)
        self.selector.register(listener, selectors.EVENT_READ, self._accept)
        self._add_client(first)

    def live(self) -> int:
        """Processes still starting or running."""
        return len(self.starting) + len(self.running)

    def run(self) -> None:
        """Serve until no daemon is connected and no process is left."""
        while self.clients or self.live():
            for key, _events in self.selector.select():
                try:
                    key.data(key.fileobj)
                except Exception:  # noqa: BLE001 - one bad request must not orphan every container
                    traceback.print_exc()
        # Unlink first: a daemon connecting from now on starts a new monitor; one that
        # connected just before sees the listener close and retries.
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.listener.close()

    # ------------------------------------------------------------------ daemon connections

    def _add_client(self, conn: socket.socket) -> None:
        self.clients.add(conn)
        self.selector.register(conn, selectors.EVENT_READ, self._serve)
        try:
            wire.send(conn, {"version": VERSION, "pid": os.getpid(), "live": self.live()})
        except OSError:
            self._drop_client(conn)

    def _drop_client(self, conn: socket.socket) -> None:
        self.selector.unregister(conn)
        self.clients.discard(conn)
        conn.close()

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        self._add_client(conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            request, fds = wire.recv(conn)
        except OSError:
            request, fds = None, []
        if request is None:
            for fd in fds:
                os.close(fd)
            self._drop_client(conn)
            return
        reply = socket.socket(fileno=fds[0])
        op = request["op"]
        if op in ("create", "exec"):
            self._start(request, reply, fds[1:])
            return
        try:
            if op == "watch":
                self._watch(request, reply, socket.socket(fileno=fds[1]))
            elif op == "bye":
                # This connection closes next: with no process and no other daemon, we exit.
                wire.send(reply, {"exits": not self.live() and self.clients == {conn}})
        except OSError:
            pass  # the daemon went away mid-request
        reply.close()

    def _watch(self, request: dict[str, Any], reply: socket.socket, watcher: socket.socket) -> None:
        tracked = self.running.get(request["pid"])
        if tracked is None or tracked.state_dir != request["state_dir"]:
            watcher.close()
            wire.send(reply, {"running": False})
            return
        tracked.watchers.append(watcher)
        names = list(tracked.held)
        wire.send(reply, {"running": True, "held": names}, [tracked.held[n] for n in names])

    # ------------------------------------------------------------------ starting processes

    def _start(self, request: dict[str, Any], ctl: socket.socket, fds: list[int]) -> None:
        watcher = socket.socket(fileno=fds[0])
        stdio = dict(zip(request["stdio_slots"], fds[1:]))
        # Passed down to the container process (see ``initbin``); never kept here.
        request["init_fd"] = fds[-1] if request.get("init_binary") else None
        passed = {*stdio.values(), *([request["init_fd"]] if request["init_fd"] is not None else [])}
        tracked = Tracked(request["state_dir"], [watcher])
        report = peer = None
        try:
            if not request["terminal"]:
                tracked.held = hold_pipes(stdio)
            request["held"] = list(tracked.held)
            report, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            pid = os.fork()
            if pid == 0:
                try:
                    sc.close_all_but({ctl.fileno(), peer.fileno(), *passed})
                    starter.run_starter(request, ctl, stdio, peer)
                finally:
                    os._exit(child.SETUP_FAILED)  # never back into the monitor's loop
        except BaseException as e:  # noqa: BLE001 - reported to the daemon, the monitor goes on
            try:
                wire.send(ctl, {"error": f"cannot start the container process: {e}", "code": child.SETUP_FAILED})
            except OSError:
                pass
            tracked.release()
            if report is not None:
                report.close()
            return
        finally:
            ctl.close()
            if peer is not None:
                peer.close()
            for fd in passed:
                os.close(fd)
        entry = Starting(report, tracked)
        self.starting[pid] = entry
        self.selector.register(report, selectors.EVENT_READ, lambda _sock: self._drain(entry))

    def _drain(self, entry: Starting) -> None:
        """Take in every message a starter has sent so far."""
        tracked = entry.tracked
        while entry.reading:
            try:
                message, fds = wire.recv_nowait(entry.report, 4096)
            except BlockingIOError:
                return
            if message is None:
                for fd in fds:
                    os.close(fd)
                self.selector.unregister(entry.report)
                entry.reading = False
                return
            if "pid" in message:
                tracked.pid = message["pid"]
                self.running[tracked.pid] = tracked
            elif message.get("pty") and fds:
                if "pty" in tracked.held:
                    os.close(tracked.held["pty"])
                tracked.held["pty"] = fds[0]

    # ------------------------------------------------------------------ reaping

    def _reap(self, _fd: object) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        # A container process can only become our child after its starter reported it
        # and exited, so with every report read first, no reaped PID is unknown to us
        # unless it is an orphan of the host pid namespace (a container sharing it).
        for entry in self.starting.values():
            self._drain(entry)
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.starting:
                entry = self.starting.pop(pid)
                if entry.reading:
                    self.selector.unregister(entry.report)
                entry.report.close()
                if not entry.tracked.pid:
                    entry.tracked.release()  # it failed before its process existed
            elif pid in self.running:
                tracked = self.running.pop(pid)
                code = child.docker_exit_code(wait_status)
                status.write_status(tracked.state_dir, code)
                tracked.notify({"exit": code})
                tracked.release()


def main() -> None:
    """Entry point: ``python -m shoal.plugins.namespaces.monitor PATH LISTENER_FD CLIENT_FD``."""
    path, listener_fd, client_fd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # Not the daemon's child: it outlives the daemon, and a daemon restarted later is not
    # its parent either, so no daemon ever has to reap it.
    if os.fork():
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    listener = socket.socket(fileno=listener_fd)
    first = socket.socket(fileno=client_fd)
    gc.collect()
    gc.freeze()
    Monitor(path, listener, first).run()


if __name__ == "__main__":
    main()
