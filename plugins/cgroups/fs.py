"""The one seam through which the drivers touch cgroupfs.

Every read, write, mkdir and rmdir of a driver goes through a ``CgroupFs``, so a driver can run
against a directory tree laid out like a cgroup hierarchy (a fake for unit tests) as well as the
kernel's. Paths are absolute; the drivers build them from the mount points they were given.
"""

from __future__ import annotations

import os


class CgroupFs:
    """Plain file operations on cgroupfs, with the kernel's semantics (no file creation)."""

    def read(self, path: str) -> str:
        """Read a whole control file."""
        with open(path, encoding="ascii") as f:
            return f.read()

    def write(self, path: str, value: str) -> None:
        """Write one value to a control file in a single write(2), as the kernel expects.

        The file must exist: control files are made by the kernel, never by us, so a missing
        one raises ``FileNotFoundError`` instead of silently creating a plain file.
        """
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode("ascii"))
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        """Tell whether a group directory or control file exists."""
        return os.path.exists(path)

    def mkdir(self, path: str) -> None:
        """Create a group (the kernel fills it with control files)."""
        os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        """Remove an empty group; raises ``OSError(EBUSY)`` while processes or children remain."""
        os.rmdir(path)
