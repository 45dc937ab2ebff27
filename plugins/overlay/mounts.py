"""mount(2) and umount2(2) through ctypes, and the overlayfs options string.

A direct syscall costs microseconds; running ``mount(8)`` costs milliseconds, which matters
when a container start is meant to take a few.

The options of one mount(2) call must fit in a page (4096 bytes, the kernel copies one
page of it). With absolute paths such as ``/var/lib/shoal/plugins/overlay/layers/<64 hex
digits>/fs`` (about 110 bytes each) that allows some 35 layers. Docker and containerd keep
short symlinks and ``chdir`` before mounting, but the working directory belongs to the whole
process and this one is multi-threaded. Here, when absolute paths do not fit, each layer
directory is opened (``O_PATH``) and named as ``/proc/self/fd/N`` (about 17 bytes): the
kernel resolves those while mounting, after which the descriptors are closed. That allows
over 200 layers (Docker caps images at 127) without touching process-wide state; short
stacks keep the readable absolute paths in ``/proc/self/mountinfo``.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Sequence

MNT_DETACH = 2
#: Bytes of mount data the kernel reads (one page), less the terminating NUL.
MAX_OPTIONS = os.sysconf("SC_PAGE_SIZE") - 1
#: Characters that would break overlayfs's option parsing if a path held them.
UNSAFE_PATH_CHARS = frozenset(",:\\=\n")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str | None = None) -> None:
    """Call mount(2); raises ``OSError`` with the errno and target."""
    result = _libc.mount(
        source.encode(), os.fsencode(target), fstype.encode(), flags, data.encode() if data is not None else None
    )
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount {fstype} on {target}: {os.strerror(code)}")


def unmount(target: str) -> None:
    """Unmount ``target``; detach lazily if it is busy; not mounted is not an error."""
    path = os.fsencode(target)
    if _libc.umount2(path, 0) == 0:
        return
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOENT):
        return
    if code == errno.EBUSY and _libc.umount2(path, MNT_DETACH) == 0:
        return
    code = ctypes.get_errno()
    raise OSError(code, f"umount {target}: {os.strerror(code)}")


def overlay_options(lower: Sequence[str], upper: str, work: str, fds: Sequence[int] = ()) -> str:
    """The data string for an overlay mount.

    Args:
        lower: lower directories, topmost first.
        upper: the writable directory.
        work: overlayfs's scratch directory, on the same file system as ``upper``.
        fds: descriptors of ``lower`` (same order) to name as /proc/self/fd/N instead.
    Returns:
        The options string.
    """
    names = [f"/proc/self/fd/{fd}" for fd in fds] if fds else list(lower)
    return f"lowerdir={':'.join(names)},upperdir={upper},workdir={work}"


def mount_overlay(target: str, lower: Sequence[str], upper: str, work: str) -> None:
    """Mount an overlay at ``target``, naming layers by descriptor when paths are too long.

    Args:
        target: the mount point.
        lower: lower directories, topmost first.
        upper: the writable directory.
        work: the work directory.
    Returns:
        None; raises ``OSError`` (E2BIG when even descriptors do not fit).
    """
    options = overlay_options(lower, upper, work)
    if len(options) <= MAX_OPTIONS:
        mount("overlay", target, "overlay", 0, options)
        return
    fds: list[int] = []
    try:
        for path in lower:
            fds.append(os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        options = overlay_options(lower, upper, work, fds)
        if len(options) > MAX_OPTIONS:
            raise OSError(errno.E2BIG, f"overlay of {len(lower)} layers: mount options exceed {MAX_OPTIONS} bytes")
        mount("overlay", target, "overlay", 0, options)
    finally:
        for fd in fds:
            os.close(fd)


def is_mounted(path: str) -> bool:
    """Tell whether ``path`` is a mount point (its device differs from its parent's)."""
    return os.path.ismount(path)
