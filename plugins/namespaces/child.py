"""What runs inside a container: the first process's set-up, an exec'd process's entry into
a running container, the final switch to the container's user and capabilities, and exec.

These functions run in a process forked (through a starter) from the single-threaded
monitor (see ``monitor``), so plain Python is safe here. They never return: they exec the program or
report the failure to the daemon over the control socket and ``_exit``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import socket
import termios
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from shoal.runtime import ProcessSpec, RuntimeSpec

from . import caps, cgroupjoin, rootfs, wire
from . import syscalls as sc
from .users import UserError, resolve_user

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Exit status of a process that failed before its program could run.
SETUP_FAILED = 1


@dataclass
class Failure(Exception):
    """A failure to report to the daemon with the exit code the process ends with."""

    message: str
    code: int = SETUP_FAILED


def _report_and_exit(ctl: socket.socket, message: str, code: int) -> None:
    try:
        wire.send(ctl, {"error": message, "code": code})
    finally:
        os._exit(code)


@contextmanager
def _exec_failures_reported(ctl: socket.socket) -> Iterator[None]:
    """Report a failure of the steps up to exec over ``ctl`` with Docker's exit code, and exit."""
    try:
        yield
    except Failure as e:
        _report_and_exit(ctl, e.message, e.code)
    except UserError as e:
        _report_and_exit(ctl, str(e), 126)
    except BaseException as e:  # noqa: BLE001 - whatever stops the exec is reported the same way
        _report_and_exit(ctl, f"exec failed: {e}", 126)


def _read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def find_executable(name: str, path_env: str) -> str:
    """Look ``name`` up the way Docker does, raising ``Failure`` with 127 or 126."""
    if "/" in name:
        try:
            st = os.stat(name)
        except FileNotFoundError:
            raise Failure(f'exec: "{name}": stat {name}: no such file or directory', 127) from None
        except PermissionError:
            raise Failure(f'exec: "{name}": permission denied', 126) from None
        if not os.path.isfile(name) or not os.access(name, os.X_OK) or not st.st_mode & 0o111:
            raise Failure(f'exec: "{name}": permission denied', 126)
        return name
    for directory in path_env.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise Failure(f'exec: "{name}": executable file not found in $PATH', 127)


def _reset_signals() -> None:
    # Python ignores SIGPIPE and SIGXFSZ; ignored signals survive exec, so restore them all.
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _take_terminal(ctl: socket.socket, starter: socket.socket, console: bool) -> None:
    """Open a pty in the container's devpts, hand its master to the daemon and (through
    the starter) to the monitor, which holds it for live restore; make it our terminal."""
    master, slave = os.openpty()
    if console:
        rootfs.bind_console(os.ttyname(slave))
    wire.send(ctl, {"pty": True}, [master])
    wire.send(starter, {"pty": True}, [master])
    os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for n in range(3):
        os.dup2(slave, n)
    if slave > 2:
        os.close(slave)


def _set_stdio(fds: dict[int, int]) -> None:
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    for n in range(3):
        os.dup2(fds.get(n, null), n)
    os.close(null)
    for fd in set(fds.values()):
        if fd > 2:
            os.close(fd)


def _switch_and_exec(proc: ProcessSpec, keep: int, top: int) -> None:
    """Become the container user with the kept capabilities and run the program."""
    user = resolve_user(proc.user, _read_text("/etc/passwd"), _read_text("/etc/group"), proc.additional_gids)
    env = list(proc.env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    path_env = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    os.setgroups(list(user.groups))
    os.setresgid(user.gid, user.gid, user.gid)
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    os.setresuid(user.uid, user.uid, user.uid)
    caps.set_process_caps(keep, top)
    if proc.cwd:
        try:
            os.chdir(proc.cwd)
        except OSError as e:
            raise Failure(f"chdir to cwd ({proc.cwd!r}) set in config.json failed: {e.strerror}", 126) from None
    if not proc.args:
        raise Failure("no command specified", 126)
    program = find_executable(proc.args[0], path_env)
    _reset_signals()
    try:
        os.execve(program, list(proc.args), dict(e.split("=", 1) for e in env if "=" in e))
    except OSError as e:
        code = 127 if e.errno == errno.ENOENT else 126
        raise Failure(f'exec: "{proc.args[0]}": {e.strerror.lower()}', code) from None


def _prepare_process(proc: ProcessSpec) -> tuple[int, int]:
    """Apply the parts of the process spec that need privileges; return (kept caps, last cap)."""
    if proc.cwd and not os.path.isdir(proc.cwd):
        try:
            os.makedirs(proc.cwd, 0o755, exist_ok=True)
        except OSError:
            pass  # the chdir after the user switch reports it
    for name, soft, hard in proc.rlimits:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if proc.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc.oom_score_adj))
    keep = caps.to_mask(proc.capabilities)
    top = caps.last_cap()
    if proc.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    caps.drop_bounding(keep, top)
    return keep, top


def _run_as_init(ctl: socket.socket, proc: ProcessSpec, init_fd: int | None) -> None:
    """Fork the program and stay as PID 1: reap every child, forward every signal.

    PID 1 becomes the compiled init of ``init_fd`` if there is one (it keeps root with the
    kept capabilities: an exec as root takes the bounding set, already reduced to them);
    otherwise it runs the same loop in Python.
    """
    keep, top = _prepare_process(proc)
    every = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
    signal.pthread_sigmask(signal.SIG_BLOCK, every)
    child = os.fork()
    if child == 0:
        try:
            # Its own foreground process group: terminal signals reach the program once,
            # not also through PID 1's forwarding. Signals are still blocked here, so
            # taking the terminal's foreground does not stop us with SIGTTOU.
            os.setpgid(0, 0)
            if os.isatty(0):
                os.tcsetpgrp(0, os.getpid())
            _switch_and_exec(proc, keep, top)
        except Failure as e:
            _report_and_exit(ctl, e.message, e.code)
        except BaseException as e:  # noqa: BLE001 - anything else is a failed exec too
            _report_and_exit(ctl, f"exec: {e}", 126)
    ctl.close()
    if init_fd is not None:
        try:
            os.execve(init_fd, ["init", str(child)], {})
        except OSError:
            pass  # the Python loop below does the same
    caps.set_process_caps(keep, top)
    while True:
        info = signal.sigwaitinfo(every)
        if info.si_signo != signal.SIGCHLD:
            try:
                os.kill(child, info.si_signo)
            except ProcessLookupError:
                pass
            continue
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(0)
            if pid == 0:
                break
            if pid == child:
                os._exit(docker_exit_code(status))


def docker_exit_code(status: int) -> int:
    """A wait status as Docker reports it: the exit code, or 128 + the signal number."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def pid_one_forked_inside(namespaces: dict[str, str | None]) -> bool:
    """Whether PID 1 is forked by the container process itself (new user and pid namespaces).

    The pid namespace must then be created after the user namespace, so that the new user
    namespace owns it (and the container can mount /proc); see ``starter``.
    """
    return namespaces.get("user", "") is None and namespaces.get("pid", "") is None


def _become_pid_one(starter: socket.socket) -> None:
    """Create the pid namespace and continue in its PID 1; the parent reports it and exits."""
    sc.unshare(sc.CLONE_NEWPID)
    pid = os.fork()
    if pid:
        wire.send(starter, {"pid": pid})
        os._exit(0)


def _wait_for_maps(starter: socket.socket) -> None:
    wire.send(starter, {"userns": True})
    reply, _ = wire.recv(starter, 4096)
    if not reply or not reply.get("mapped"):
        raise Failure("user namespace mapping failed")


def _wait_for_placement(starter: socket.socket) -> None:
    """Wait until the starter has put this process in its cgroups (spec.cgroup_procs)."""
    wire.send(starter, {"cgroup": True})
    reply, _ = wire.recv(starter, 4096)
    if not reply or not reply.get("placed"):
        raise Failure((reply or {}).get("error") or "cgroup placement failed")


def container_init(spec: RuntimeSpec, stdio: dict[int, int], terminal: bool, etc_sources: dict[str, str],
                   ctl: socket.socket, starter: socket.socket, init_fd: int | None = None) -> None:
    """Set up a new container in this process (PID 1 of its pid namespace) and run it.

    Reports ``ready`` once the namespaces and mounts exist, waits for ``start``, then execs.
    With ``spec.init``, ``init_fd`` is the compiled init to become (see ``initbin``), or
    None to stay PID 1 in Python.
    """
    try:
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        os.umask(0o022)
        try:
            placed_by_starter = cgroupjoin.move_self(spec.cgroup_procs)
        except OSError as e:
            raise Failure(f"cannot join the container's cgroup: {e}") from None
        namespaces = spec.namespaces
        user_path = namespaces.get("user")
        if "user" in namespaces and user_path is None:
            sc.unshare(sc.CLONE_NEWUSER)
            _wait_for_maps(starter)
            # Our host ids are not mapped: become the namespace's root (host ids from the maps).
            os.setgroups([])
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            if pid_one_forked_inside(namespaces):
                _become_pid_one(starter)
        elif user_path:
            _join(user_path, sc.CLONE_NEWUSER)
        flags = 0
        for kind in ("uts", "ipc", "net", "mount"):
            if kind not in namespaces:
                continue
            if namespaces[kind] is None:
                flags |= sc.NAMESPACE_FLAGS[kind]
            else:
                _join(namespaces[kind], sc.NAMESPACE_FLAGS[kind])
        sc.unshare(flags)
        if spec.hostname:
            sc.sethostname(spec.hostname)
        if spec.domainname:
            sc.setdomainname(spec.domainname)
        if not terminal:
            _set_stdio(stdio)
        in_userns = "user" in namespaces
        rootfs.build_mounts(spec, etc_sources, in_userns)
        rootfs.pivot(spec.rootfs)
        rootfs.write_sysctls(spec.sysctls)
        rootfs.mask_paths(spec.masked_paths)
        rootfs.readonly_paths(spec.readonly_paths)
        if terminal:
            _take_terminal(ctl, starter, console=True)
        else:
            os.setsid()
        if spec.readonly_rootfs:
            rootfs.readonly_root()
        if placed_by_starter:
            _wait_for_placement(starter)
        # The starter exits once this socket closes: its death must not kill us.
        sc.prctl(sc.PR_SET_PDEATHSIG, 0)
        starter.close()
        sc.cloexec_from(3)
        wire.send(ctl, {"ready": True})
    except Failure as e:
        _report_and_exit(ctl, e.message, e.code)
    except BaseException as e:  # noqa: BLE001 - every set-up failure is reported the same way
        _report_and_exit(ctl, f"container set-up failed: {e}", SETUP_FAILED)

    message, _ = wire.recv(ctl)
    if not message or not message.get("start"):
        os._exit(SETUP_FAILED)  # the daemon gave up on this container
    with _exec_failures_reported(ctl):
        if namespaces.get("cgroup", "") is None:
            # Now that the daemon placed us in our cgroup, it becomes the namespace's root.
            sc.unshare(sc.CLONE_NEWCGROUP)
        elif namespaces.get("cgroup"):
            _join(namespaces["cgroup"], sc.CLONE_NEWCGROUP)
        if spec.init:
            _run_as_init(ctl, spec.process, init_fd)
        keep, top = _prepare_process(spec.process)
        _switch_and_exec(spec.process, keep, top)


def _join(path: str, nstype: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(fd, nstype)
    finally:
        os.close(fd)


def _join_cgroups(target: int) -> None:
    """Move this process into every cgroup of ``target`` (read from the host's view)."""
    mounts: list[tuple[str, str, set[str]]] = []  # (mount root, mount point, options)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, super_opts = fields[sep + 1], fields[sep + 3]
            if fstype in ("cgroup", "cgroup2"):
                opts = set(super_opts.split(",")) if fstype == "cgroup" else {""}
                mounts.append((fields[3], fields[4], opts))
    with open(f"/proc/{target}/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        _hid, controllers, path = line.split(":", 2)
        wanted = set(controllers.split(",")) if controllers else {""}
        for root, point, opts in mounts:
            if wanted <= opts and (path + "/").startswith(root.rstrip("/") + "/"):
                directory = point + path[len(root.rstrip("/")):]
                try:
                    with open(os.path.join(directory, "cgroup.procs"), "w") as procs:
                        procs.write("0")
                except OSError:
                    continue
                break


def exec_in_container(target: int, proc: ProcessSpec, stdio: dict[int, int], terminal: bool,
                      ctl: socket.socket, starter: socket.socket) -> None:
    """Enter the running container of ``target`` (already in its pid namespace) and exec."""
    with _exec_failures_reported(ctl):
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        _join_cgroups(target)
        fds = {}
        for kind in ("user", "uts", "ipc", "net", "cgroup", "mount"):
            name = sc.NAMESPACE_FILES[kind]
            theirs = os.stat(f"/proc/{target}/ns/{name}")
            ours = os.stat(f"/proc/self/ns/{name}")
            if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
                fds[kind] = os.open(f"/proc/{target}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        if not terminal:
            _set_stdio(stdio)
        for kind, fd in fds.items():
            sc.setns(fd, sc.NAMESPACE_FLAGS[kind])
            os.close(fd)
        os.chdir("/")
        if terminal:
            _take_terminal(ctl, starter, console=False)
        else:
            os.setsid()
        sc.prctl(sc.PR_SET_PDEATHSIG, 0)
        starter.close()
        sc.cloexec_from(3)
        keep, top = _prepare_process(proc)
        _switch_and_exec(proc, keep, top)
