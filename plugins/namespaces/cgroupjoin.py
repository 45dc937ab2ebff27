"""Placing a new container process in its cgroups (``RuntimeSpec.cgroup_procs``) cheaply.

Moving a process through ``cgroup.procs`` takes the kernel's global threadgroup lock for
writing, which on a quiet host waits for an RCU grace period (~10 ms). A single-threaded
process that moves itself through a v1 hierarchy's ``tasks`` file skips that lock. The
container process is single-threaded until it execs, so on v1 it moves itself; a v2 group
has no such file, and there the starter writes the PID while the process sets up.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def tasks_file(procs_file: str) -> str | None:
    """The v1 ``tasks`` file beside ``procs_file``, if the hierarchy has one."""
    tasks = os.path.join(os.path.dirname(procs_file), "tasks")
    return tasks if os.path.exists(tasks) else None


def move_self(procs_files: Iterable[str]) -> list[str]:
    """Move the calling (single-threaded) process into every group with a ``tasks`` file;
    the ``cgroup.procs`` files left for someone else to write the PID into."""
    left = []
    for path in procs_files:
        tasks = tasks_file(path)
        if tasks is None:
            left.append(path)
            continue
        with open(tasks, "w") as f:
            f.write("0")
    return left
