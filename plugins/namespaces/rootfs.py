"""Build a container's mount tree and pivot into it (runs in the container's first process).

Every mount target inside the rootfs is opened with ``openat2(RESOLVE_IN_ROOT)`` and mounted
through its ``/proc/self/fd`` link, so a symlink planted in the image (``/proc -> /etc`` or
``/data -> ../../..``) resolves inside the rootfs and can never put a mount on the host's
tree. After ``pivot_root`` the container's root is ``/``, so later work (sysctls, masked and
read-only paths) uses plain paths.
"""

from __future__ import annotations

import errno
import os
import stat

from shoal.runtime import Mount, RuntimeSpec

from . import syscalls as sc

_RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS

#: Mount option name -> (flags to set, flags to clear).
_FLAG_OPTIONS = {
    "ro": (sc.MS_RDONLY, 0),
    "rw": (0, sc.MS_RDONLY),
    "nosuid": (sc.MS_NOSUID, 0),
    "suid": (0, sc.MS_NOSUID),
    "nodev": (sc.MS_NODEV, 0),
    "dev": (0, sc.MS_NODEV),
    "noexec": (sc.MS_NOEXEC, 0),
    "exec": (0, sc.MS_NOEXEC),
    "noatime": (sc.MS_NOATIME, 0),
    "nodiratime": (sc.MS_NODIRATIME, 0),
    "relatime": (sc.MS_RELATIME, 0),
    "strictatime": (sc.MS_STRICTATIME, 0),
    "bind": (sc.MS_BIND, 0),
    "rbind": (sc.MS_BIND | sc.MS_REC, 0),
}
_PROPAGATION = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}
#: statvfs f_flag bits that a read-only remount must carry over (same values as MS_*).
_KEPT_ON_REMOUNT = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_RELATIME

_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
_DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
    "core": "/proc/kcore",
}


class MountError(OSError):
    """A mount the spec asks for cannot be made; the message names it."""


def open_in_root(root_fd: int, path: str, create: str | None = None, _depth: int = 0) -> int:
    """Open ``path`` (O_PATH) with symlinks resolved inside the tree of ``root_fd``.

    Args:
        root_fd: an open directory that acts as ``/`` for the lookup.
        path: the container path.
        create: "dir" or "file" to create what is missing (parents as directories); a
            dangling symlink on the way is followed, inside the root, to what it names.
    """
    if _depth > 40:
        raise OSError(errno.ELOOP, f"too many levels of symbolic links: {path}")
    rel = path.strip("/")
    if not rel:
        return os.dup(root_fd)
    try:
        return sc.openat2(root_fd, rel, os.O_PATH, _RESOLVE)
    except FileNotFoundError:
        if create is None:
            raise
    parts = [p for p in rel.split("/") if p]
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            sub = "/".join(parts[: i + 1])
            try:
                next_fd = sc.openat2(root_fd, sub, os.O_PATH, _RESOLVE)
            except FileNotFoundError:
                if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode if _exists(part, fd) else 0):
                    # A dangling symlink: create what it points to, resolved inside the root.
                    link = os.readlink(part, dir_fd=fd)
                    base = "/" + "/".join(parts[:i])
                    rest = "/".join(parts[i + 1 :])
                    target = os.path.join(base, link, rest) if rest else os.path.join(base, link)
                    os.close(fd)
                    fd = -1
                    return open_in_root(root_fd, target, create, _depth + 1)
                if i == len(parts) - 1 and create == "file":
                    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd))
                else:
                    os.mkdir(part, 0o755, dir_fd=fd)
                next_fd = sc.openat2(root_fd, sub, os.O_PATH, _RESOLVE)
            os.close(fd)
            fd = next_fd
        return fd
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def parse_options(options: tuple[str, ...]) -> tuple[int, list[str], str]:
    """Split mount options into (MS_* flags, propagation options, fs data string)."""
    flags = 0
    propagation = []
    data = []
    for option in options:
        if option in _FLAG_OPTIONS:
            set_, clear = _FLAG_OPTIONS[option]
            flags = (flags | set_) & ~clear
        elif option in _PROPAGATION:
            propagation.append(option)
        else:
            data.append(option)
    return flags, propagation, ",".join(data)


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _remount_readonly(target: str) -> None:
    kept = os.statvfs(target).f_flag & _KEPT_ON_REMOUNT
    sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | kept)


def _mount_in_root(root_fd: int, m: Mount) -> None:
    flags, propagation, data = parse_options(m.options)
    if m.type == "bind":
        try:
            is_dir = stat.S_ISDIR(os.stat(m.source).st_mode)
        except FileNotFoundError:
            raise MountError(errno.ENOENT, f"bind source path does not exist: {m.source}") from None
        if not flags & sc.MS_BIND:
            flags |= sc.MS_BIND | sc.MS_REC
    else:
        is_dir = True
    target_fd = open_in_root(root_fd, m.destination, "dir" if is_dir else "file")
    try:
        target = _fd_path(target_fd)
        if m.type == "bind":
            sc.mount(m.source, target, None, flags & (sc.MS_BIND | sc.MS_REC))
            # A bind takes its flags only through a remount of the new mount.
            extra = flags & ~(sc.MS_BIND | sc.MS_REC)
            if extra:
                sub_fd = open_in_root(root_fd, m.destination)
                try:
                    sc.mount(None, _fd_path(sub_fd), None, sc.MS_BIND | sc.MS_REMOUNT | extra)
                finally:
                    os.close(sub_fd)
        else:
            sc.mount(m.source or m.type, target, m.type, flags, data or None)
        for option in propagation:
            mode = sc.MS_PRIVATE if "private" in option else sc.MS_SLAVE if "slave" in option else 1 << 20
            sub_fd = open_in_root(root_fd, m.destination)
            try:
                sc.mount(None, _fd_path(sub_fd), None, mode | (sc.MS_REC if option.startswith("r") else 0))
            finally:
                os.close(sub_fd)
    finally:
        os.close(target_fd)


def default_mounts(spec: RuntimeSpec, in_userns: bool) -> list[Mount]:
    """The kernel file systems every container gets, unless ``spec.mounts`` replaces one."""
    pts = "newinstance,ptmxmode=0666,mode=0620" + ("" if in_userns else ",gid=5")
    sys_options = ("nosuid", "noexec", "nodev") + (() if spec.privileged else ("ro",))
    mounts = [
        Mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount("/dev/pts", "devpts", "devpts", ("nosuid", "noexec", pts)),
        Mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
        Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        Mount("/sys", "sysfs", "sysfs", sys_options),
    ]
    replaced = {m.destination.rstrip("/") for m in spec.mounts}
    return [m for m in mounts if m.destination not in replaced]


def _populate_dev(root_fd: int, in_userns: bool) -> None:
    dev_fd = open_in_root(root_fd, "/dev")
    try:
        for name, (major, minor) in _DEVICES.items():
            if in_userns:
                # mknod is refused in a user namespace: bind the host's node instead.
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666, dir_fd=dev_fd))
                node_fd = sc.openat2(dev_fd, name, os.O_PATH, _RESOLVE)
                try:
                    sc.mount(f"/dev/{name}", _fd_path(node_fd), None, sc.MS_BIND)
                finally:
                    os.close(node_fd)
            else:
                os.mknod(name, stat.S_IFCHR | 0o666, os.makedev(major, minor), dir_fd=dev_fd)
                os.chmod(name, 0o666, dir_fd=dev_fd)
        for name, target in _DEV_LINKS.items():
            os.symlink(target, name, dir_fd=dev_fd)
    finally:
        os.close(dev_fd)


def _sysfs_fallback(root_fd: int, m: Mount) -> None:
    """Bind the host's /sys where a fresh sysfs is refused (user namespace, shared net)."""
    target_fd = open_in_root(root_fd, m.destination, "dir")
    try:
        sc.mount("/sys", _fd_path(target_fd), None, sc.MS_BIND | sc.MS_REC)
    finally:
        os.close(target_fd)
    if "ro" in m.options:
        target_fd = open_in_root(root_fd, m.destination)
        try:
            _remount_readonly(_fd_path(target_fd))
        finally:
            os.close(target_fd)


def build_mounts(spec: RuntimeSpec, etc_sources: dict[str, str], in_userns: bool) -> None:
    """Make the mount tree private, bind the rootfs onto itself and mount everything in it.

    Args:
        spec: the container's spec.
        etc_sources: container path -> host file bind-mounted there (hostname, hosts...).
        in_userns: whether the container has its own user namespace (no mknod then).
    """
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount(spec.rootfs, spec.rootfs, None, sc.MS_BIND | sc.MS_REC)
    root_fd = os.open(spec.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for m in default_mounts(spec, in_userns):
            try:
                _mount_in_root(root_fd, m)
            except PermissionError:
                if m.type != "sysfs":
                    raise
                _sysfs_fallback(root_fd, m)
            if m.destination == "/dev":
                _populate_dev(root_fd, in_userns)
        for m in spec.mounts:
            _mount_in_root(root_fd, m)
        for path, source in etc_sources.items():
            _mount_in_root(root_fd, Mount(path, "bind", source, ("bind",)))
    finally:
        os.close(root_fd)


def pivot(rootfs: str) -> None:
    """Make ``rootfs`` the root of this mount namespace and detach the old root entirely."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(rootfs)
        sc.pivot_root(".", ".")
        # The old root now sits on top of the new one: step onto it and lazily unmount it.
        os.fchdir(old_root)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")


def write_sysctls(sysctls: dict[str, str]) -> None:
    """Set namespaced sysctls ("net.ipv4.ip_forward") through the container's /proc/sys."""
    for key, value in sysctls.items():
        path = "/proc/sys/" + key.replace(".", "/")
        with open(path, "w") as f:
            f.write(value)


def mask_paths(paths: tuple[str, ...]) -> None:
    """Hide files under /dev/null and directories under an empty read-only tmpfs."""
    for path in paths:
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if is_dir:
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, "size=0")
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND)


def readonly_paths(paths: tuple[str, ...]) -> None:
    """Bind each existing path onto itself and make that bind read-only."""
    for path in paths:
        try:
            sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
        except FileNotFoundError:
            continue
        _remount_readonly(path)


def readonly_root() -> None:
    """Make the container's root mount read-only."""
    _remount_readonly("/")


def bind_console(slave_name: str) -> None:
    """Bind the terminal's slave side onto /dev/console."""
    fd = os.open("/dev/console", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)
    sc.mount(slave_name, "/dev/console", None, sc.MS_BIND)
