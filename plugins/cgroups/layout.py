"""Which cgroup hierarchies this host has, read from /proc/self/mountinfo.

Three layouts exist in the wild:

* v2 ("unified"): one cgroup2 mount, usually /sys/fs/cgroup, holding every controller;
* v1 ("legacy"): one cgroup mount per controller (or per co-mounted group such as cpu,cpuacct);
* hybrid: v1 controllers plus a cgroup2 mount (often /sys/fs/cgroup/unified) that holds few or
  no controllers. The controllers that matter are on v1 there, so hybrid is driven as v1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

MOUNTINFO = "/proc/self/mountinfo"

#: v1 controllers a container's group is created in.
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")

_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class CgroupLayout:
    """The cgroup mounts of a host."""

    #: v1 controller name -> mount point of its hierarchy (co-mounted controllers share one).
    v1: dict[str, str] = field(default_factory=dict)
    #: Mount point of the cgroup2 hierarchy, if one is mounted.
    v2: str | None = None

    @property
    def kind(self) -> Literal["v1", "v2", "hybrid", "none"]:
        """Name of the layout."""
        if self.v1:
            return "hybrid" if self.v2 else "v1"
        return "v2" if self.v2 else "none"


def _unescape(path: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), path)


def parse_mountinfo(text: str) -> CgroupLayout:
    """Find the cgroup hierarchies in the text of a mountinfo file.

    The first mount of a hierarchy wins (later ones are bind mounts of it). For cgroup2 a
    mount at /sys/fs/cgroup is preferred over any other.
    """
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        fields = head.split()
        fstype, _source, superopts = (tail.split() + ["", "", ""])[:3]
        if len(fields) < 5:
            continue
        mountpoint = _unescape(fields[4])
        if fstype == "cgroup":
            for option in superopts.split(","):
                if option in V1_CONTROLLERS:
                    v1.setdefault(option, mountpoint)
        elif fstype == "cgroup2" and (v2 is None or mountpoint == "/sys/fs/cgroup"):
            v2 = mountpoint
    return CgroupLayout(v1=v1, v2=v2)


def read_layout(path: str = MOUNTINFO) -> CgroupLayout:
    """Read this process's cgroup layout."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())
