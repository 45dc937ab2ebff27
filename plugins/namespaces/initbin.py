"""A small static C program for ``--init``, built once per daemon when a C compiler exists.

With ``--init`` the container's PID 1 reaps every zombie and forwards every signal to the
program. Staying a forked copy of the Python interpreter for that costs about 2 MiB of PSS
per container (pages Python dirties just by running); this 20-line loop costs a few pages.
The container process still does all of its set-up in Python, forks the program, then
replaces itself with this loop (the signal mask, blocked for everything, and any pending
SIGCHLD survive the exec).

The binary is compiled with the host's ``cc`` on the first ``--init`` container of a daemon
run (about 100 ms, in a worker thread), linked statically (the container's rootfs has no
loader or libc of ours) and kept in a sealed memfd that container processes execute from:
nothing on the host's file system is exposed to the container, and the sealed copy cannot be
written through /proc/1/exe. Without a compiler (or static libc) the Python loop in
``child`` is used instead; building is a few lines of C rather than a packaging step, which
keeps the project pure Python to install.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile

log = logging.getLogger(__name__)

SOURCE = r"""
/* PID 1 of a container: reap every child, forward every signal to the program, exit with
   its status (128 + signal number if a signal ended it). argv[1] is the program's PID. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
    if (argc != 2)
        return 1;
    pid_t program = (pid_t)strtol(argv[1], NULL, 10);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        for (;;) { /* reap first: the program may have ended before this exec */
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid < 0) {
                if (errno == EINTR)
                    continue;
                return 0; /* no child at all */
            }
            if (pid == 0)
                break;
            if (pid == program)
                return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        }
        int sig = sigwaitinfo(&all, NULL);
        if (sig > 0 && sig != SIGCHLD)
            kill(program, sig);
    }
}
"""

_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def build() -> int | None:
    """Compile the init into a sealed memfd; its descriptor, or None without a compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.info("no C compiler: --init runs a Python PID 1 (about 2 MiB per container)")
        return None
    with tempfile.TemporaryDirectory(prefix="shoal-init-") as tmp:
        source, binary = os.path.join(tmp, "init.c"), os.path.join(tmp, "init")
        with open(source, "w") as f:
            f.write(SOURCE)
        result = subprocess.run([compiler, "-static", "-Os", "-s", "-o", binary, source],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            log.warning("cannot build the --init binary (a Python PID 1 is used): %s", result.stderr.strip())
            return None
        with open(binary, "rb") as f:
            code = f.read()
    fd = os.memfd_create("shoal-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(code)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd
