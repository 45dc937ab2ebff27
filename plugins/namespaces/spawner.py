"""The spawner: a single-threaded, warm Python process that forks every shim.

Why a separate process: the daemon is a trio program with worker threads, and a fork of a
multi-threaded process may inherit locks held by other threads (the allocator, the import
lock, logging), so running Python in such a child is unsafe. The spawner is started once by
the daemon (``python -m``, a clean single-threaded interpreter), imports everything a
container needs up front and then only forks: a child can run ordinary Python (user
lookup, mount set-up) safely, with no interpreter start or imports per container, which is
what makes a start take a few milliseconds. ``gc.freeze()`` keeps the imported objects out
of the collector so the forked shims share those pages with the spawner and with each
other (small PSS per idle container).

Protocol: the daemon sends one message per process to start (see ``wire``) carrying the
request and the control socket plus stdio descriptors; the spawner forks a shim and goes
back to reading. It exits when the daemon's end closes; shims live on.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys

from . import shim, wire


def serve(sock: socket.socket) -> None:
    """Fork a shim for every request until the daemon closes its end."""
    # Shims are reaped by the kernel; the daemon follows them through pidfds.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.collect()
    gc.freeze()
    while True:
        request, fds = wire.recv(sock)
        if request is None:
            return
        pid = os.fork()
        if pid == 0:
            sock.close()
            shim.run_shim(request, fds)
        for fd in fds:
            os.close(fd)


def main() -> None:
    """Entry point: ``python -m shoal.plugins.namespaces.spawner FD``."""
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
