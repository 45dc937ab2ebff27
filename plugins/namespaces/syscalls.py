"""Thin ctypes wrappers for the Linux system calls the standard library lacks.

Every wrapper raises ``OSError`` with the errno, like the ``os`` module does. Syscall numbers
are for x86_64 and aarch64 (the two architectures shoal runs on).
"""

from __future__ import annotations

import ctypes
import os
import platform

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_NR = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "close_range": 436, "openat2": 437, "pidfd_getfd": 438},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "close_range": 436, "openat2": 437, "pidfd_getfd": 438},
}[platform.machine()]

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

#: Namespace kind (as in ``RuntimeSpec.namespaces``) -> clone flag, in the order they are
#: joined: the user namespace first, so the others are entered with its privileges; the
#: mount namespace last, since it changes the root the other /proc paths resolve in.
NAMESPACE_FLAGS = {
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "net": CLONE_NEWNET,
    "cgroup": CLONE_NEWCGROUP,
    "mount": CLONE_NEWNS,
}
#: Kind -> name of its file under /proc/PID/ns.
NAMESPACE_FILES = {"user": "user", "pid": "pid", "uts": "uts", "ipc": "ipc", "net": "net", "cgroup": "cgroup", "mount": "mnt"}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
CLOSE_RANGE_CLOEXEC = 1 << 2


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _path(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    """Move the caller into new namespaces (``CLONE_NEW*`` flags)."""
    _check(_libc.unshare(flags))


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace an open /proc/PID/ns/* file refers to."""
    _check(_libc.setns(fd, nstype))


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """mount(2); ``OSError`` names the target on failure."""
    if _libc.mount(_path(source), _path(target), _path(fstype), ctypes.c_ulong(flags), _path(data)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind'} on {target}: {os.strerror(err)}")


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_path(target), flags))


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2)."""
    _check(_libc.syscall(_NR["pivot_root"], _path(new_root), _path(put_old)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2) with integer arguments."""
    return _check(
        _libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4), ctypes.c_ulong(arg5))
    )


def sethostname(name: str) -> None:
    """Set the UTS namespace's host name."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)))


def setdomainname(name: str) -> None:
    """Set the UTS namespace's NIS domain name."""
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CAP_V3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the caller's effective, permitted and inheritable capability sets (64-bit masks)."""
    header = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(_NR["capset"], ctypes.byref(header), data))


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open ``path`` relative to ``dirfd`` under the given RESOLVE_* rules."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _check(_libc.syscall(_NR["openat2"], dirfd, _path(path), ctypes.byref(how), ctypes.sizeof(how)))


def pidfd_getfd(pidfd: int, targetfd: int) -> int:
    """Duplicate another process's file descriptor into this one (close-on-exec)."""
    return _check(_libc.syscall(_NR["pidfd_getfd"], pidfd, targetfd, 0))


def cloexec_from(first: int) -> None:
    """Mark every descriptor from ``first`` on close-on-exec."""
    _check(_libc.syscall(_NR["close_range"], first, ctypes.c_uint(0xFFFFFFFF), CLOSE_RANGE_CLOEXEC))


def close_range(first: int, last: int) -> None:
    """Close every descriptor from ``first`` to ``last`` (inclusive)."""
    _check(_libc.syscall(_NR["close_range"], ctypes.c_uint(first), ctypes.c_uint(last), 0))


def close_all_but(keep: set[int], first: int = 3) -> None:
    """Close every descriptor from ``first`` on except those in ``keep``."""
    low = first
    for fd in sorted(keep):
        if fd >= low:
            if fd > low:
                close_range(low, fd - 1)
            low = fd + 1
    close_range(low, 0xFFFFFFFF)
