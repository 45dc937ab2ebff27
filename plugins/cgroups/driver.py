"""The interface both cgroup drivers implement, and what they share.

A driver is synchronous: each method is a handful of small cgroupfs operations that do not
block. Waiting (for a freeze to settle, for a group to empty before removal) is left to the
async ``CgroupResources`` above, which sleeps between polls instead of holding a thread.
"""

from __future__ import annotations

import errno
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Callable

from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.runtime import ResourceLimits
from shoal.slots import ResourceStats

from .fs import CgroupFs

#: Kernel answers to a write that mean "this value is not acceptable here".
_REFUSALS = (errno.EINVAL, errno.ERANGE, errno.EBUSY, errno.ENOSPC)


def check_name(name: str) -> None:
    """Refuse a group name that is not a single, plain path component."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise InvalidArgument(f"name: {name!r} is not usable as a cgroup name")


def check_parent(parent: str) -> str:
    """Normalise the configured parent path (relative, no '..'); returns it without slashes at the ends."""
    parts = [p for p in parent.strip("/").split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise InvalidArgument(f"parent: {parent!r} is not a relative cgroup path like 'shoal'")
    return "/".join(parts)


class CgroupDriver(ABC):
    """Creates, limits, freezes, measures and removes the cgroups of containers.

    Every group lives at ``<hierarchy>/<parent>/<name>``; only those groups (and the parent,
    when it is first needed) are ever created or removed.
    """

    #: "v1" or "v2", reported in the raw stats.
    version: str

    def __init__(self, parent: str, fs: CgroupFs | None = None) -> None:
        self.parent = check_parent(parent)
        self.fs = fs or CgroupFs()

    # ----------------------------------------------------------------- the interface

    @abstractmethod
    def group_dirs(self, name: str) -> list[str]:
        """Every directory of the group (one per v1 hierarchy, or the single v2 one)."""

    @abstractmethod
    def parent_bases(self) -> list[str]:
        """The hierarchy roots the parent group is made under."""

    @abstractmethod
    def create(self, name: str, limits: ResourceLimits) -> None:
        """Create the group with its limits; nothing is left behind on error."""

    @abstractmethod
    def update(self, name: str, limits: ResourceLimits) -> None:
        """Apply the limits that are set (not None) to an existing group."""

    @abstractmethod
    def set_frozen(self, name: str, frozen: bool) -> None:
        """Ask the kernel to freeze or thaw the group (it may take a while to settle)."""

    @abstractmethod
    def frozen_settled(self, name: str, frozen: bool) -> bool:
        """Tell whether the group has fully reached the frozen (or thawed) state."""

    @abstractmethod
    def stats(self, name: str) -> ResourceStats:
        """Read one sample of the group's resource use."""

    @abstractmethod
    def oom_killed(self, name: str) -> bool:
        """Tell whether the OOM killer ended a process in the group."""

    @abstractmethod
    def procs_dir(self, name: str) -> str:
        """The directory whose cgroup.procs lists the group's processes."""

    # ----------------------------------------------------------------- shared behaviour

    def exists(self, name: str) -> bool:
        """Tell whether any directory of the group exists."""
        return any(self.fs.exists(d) for d in self.group_dirs(name))

    def pids(self, name: str) -> list[int]:
        """The PIDs in the group."""
        return [int(p) for p in self.read(posixpath.join(self.procs_dir(name), "cgroup.procs"), name).split()]

    def add_process(self, name: str, pid: int) -> None:
        """Move a process into every directory of the group."""
        for directory in self.group_dirs(name):
            try:
                self.fs.write(posixpath.join(directory, "cgroup.procs"), str(pid))
            except FileNotFoundError:
                raise NotFound(f"cgroup {name!r} does not exist") from None
            except ProcessLookupError:
                raise NotFound(f"process {pid} does not exist") from None

    def remove(self, name: str) -> None:
        """Remove every directory of the group that exists.

        Raises ``OSError(EBUSY)`` while a process is still inside; the directories that could
        be removed are gone, so calling again finishes the job.
        """
        check_name(name)
        busy: OSError | None = None
        for directory in self.group_dirs(name):
            try:
                self.fs.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise
                busy = e
        if busy is not None:
            raise busy

    def remove_parent(self) -> None:
        """Remove the parent group (deepest part first) where no container group is left in it."""
        for base in self.parent_bases():
            parts = self.parent.split("/")
            for depth in range(len(parts), 0, -1):
                try:
                    self.fs.rmdir(posixpath.join(base, *parts[:depth]))
                except FileNotFoundError:
                    continue
                except OSError as e:
                    if e.errno in (errno.EBUSY, errno.ENOTEMPTY):
                        break
                    raise

    # ----------------------------------------------------------------- helpers

    def read(self, path: str, name: str) -> str:
        """Read a control file of group ``name``; a missing group raises ``NotFound``."""
        try:
            return self.fs.read(path)
        except FileNotFoundError:
            raise NotFound(f"cgroup {name!r} does not exist") from None

    def write(self, field: str, path: str, value: str) -> None:
        """Write a limit; a value the kernel refuses raises ``InvalidArgument`` naming ``field``."""
        try:
            self.fs.write(path, value)
        except FileNotFoundError:
            raise InvalidArgument(
                f"{field}: this host cannot apply it ({posixpath.basename(path)} does not exist)"
            ) from None
        except OSError as e:
            if e.errno in _REFUSALS:
                raise InvalidArgument(f"{field}: the kernel refused {value!r} ({e.strerror})") from None
            raise

    def claim(self, name: str) -> None:
        """Make way for a new group: refuse a live one, clear a stale empty one left by a crash."""
        check_name(name)
        if not self.exists(name):
            return
        for directory in self.group_dirs(name):
            if self.fs.exists(directory) and self.fs.read(posixpath.join(directory, "cgroup.procs")).strip():
                raise Conflict(f"cgroup {name!r} already exists and has processes")
        self.remove(name)

    def create_dirs(self, name: str, limits: ResourceLimits, setup: Callable[[str, ResourceLimits], None]) -> None:
        """Create the group's directories, run ``setup``, and undo everything if it fails."""
        made: list[str] = []
        try:
            for directory in self.group_dirs(name):
                self.fs.mkdir(directory)
                made.append(directory)
            setup(name, limits)
        except BaseException:
            for directory in reversed(made):
                try:
                    self.fs.rmdir(directory)
                except OSError:
                    pass
            raise

