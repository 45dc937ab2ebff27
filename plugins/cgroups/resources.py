"""The resources slot provider: async ``Resources`` on top of a v1 or v2 driver."""

from __future__ import annotations

import errno
import posixpath
from typing import Literal

import trio

from shoal.errors import ShoalError, Skip
from shoal.runtime import ResourceLimits
from shoal.slots import ResourceStats

from .driver import CgroupDriver, check_name
from .layout import CgroupLayout, read_layout
from .v1 import V1Driver
from .v2 import V2Driver

DriverChoice = Literal["auto", "v1", "v2"]

#: How long a freeze may take to settle, and how long a group may stay busy on removal.
FREEZE_TIMEOUT = 10.0
REMOVE_TIMEOUT = 2.0


def choose_driver(layout: CgroupLayout, choice: DriverChoice, parent: str) -> CgroupDriver:
    """Pick the driver for a host layout; "auto" takes v1 on v1 and hybrid hosts, v2 on pure v2.

    Raises ``Skip`` when the layout lacks what the choice needs.
    """
    if choice == "auto":
        choice = "v2" if layout.kind == "v2" else "v1"
    if choice == "v1":
        if not layout.v1:
            raise Skip(f"no cgroup v1 controller is mounted (layout: {layout.kind})")
        return V1Driver(layout.v1, parent)
    if layout.v2 is None:
        raise Skip(f"no cgroup2 hierarchy is mounted (layout: {layout.kind})")
    return V2Driver(layout.v2, parent)


class CgroupResources:
    """Places containers in cgroups with limits; reads their stats and OOM kills.

    Each method is a few small cgroupfs operations made directly (they do not block); the two
    that wait, ``freeze`` and ``remove``, sleep between polls without holding a thread.
    """

    def __init__(self, driver: CgroupDriver) -> None:
        self.driver = driver

    @classmethod
    def open(cls, driver: DriverChoice = "auto", parent: str = "shoal") -> CgroupResources:
        """Detect this host's cgroup layout from /proc/self/mountinfo and pick the driver."""
        return cls(choose_driver(read_layout(), driver, parent))

    async def create(self, name: str, limits: ResourceLimits) -> None:
        """Create the group ``name`` with ``limits``; see ``shoal.slots.Resources.create``."""
        self.driver.create(name, limits)

    async def add_process(self, name: str, pid: int) -> None:
        """Move process ``pid`` into the group."""
        self.driver.add_process(name, pid)

    def procs_files(self, name: str) -> list[str]:
        """The cgroup.procs file of every directory of the group."""
        return [posixpath.join(directory, "cgroup.procs") for directory in self.driver.group_dirs(name)]

    async def update(self, name: str, limits: ResourceLimits) -> None:
        """Apply the limits that are set to a live group."""
        self.driver.update(name, limits)

    async def freeze(self, name: str, frozen: bool) -> None:
        """Freeze or thaw the group and wait until every process in it has followed.

        A v1 freeze can stall in FREEZING (a task in an uninterruptible sleep); asking again
        retries it. A freeze that does not settle in time is undone and reported.
        """
        self.driver.set_frozen(name, frozen)
        delay = 0.0005
        asked = trio.current_time()
        with trio.move_on_after(FREEZE_TIMEOUT):
            while not self.driver.frozen_settled(name, frozen):
                await trio.sleep(delay)
                delay = min(delay * 2, 0.02)
                if trio.current_time() - asked > 0.1:
                    self.driver.set_frozen(name, frozen)
                    asked = trio.current_time()
            return
        if frozen:
            self.driver.set_frozen(name, False)
        raise ShoalError(f"cgroup {name!r} did not {'freeze' if frozen else 'thaw'} within {FREEZE_TIMEOUT:g} s")

    async def stats(self, name: str) -> ResourceStats:
        """Read the group's current resource use."""
        return self.driver.stats(name)

    async def oom_killed(self, name: str) -> bool:
        """Tell whether the OOM killer ended a process of the group."""
        return self.driver.oom_killed(name)

    async def pids(self, name: str) -> list[int]:
        """List the host PIDs in the group."""
        return self.driver.pids(name)

    async def remove(self, name: str) -> None:
        """Remove the group in every hierarchy, retrying briefly while its last processes exit."""
        check_name(name)
        delay = 0.001
        with trio.move_on_after(REMOVE_TIMEOUT):
            while True:
                try:
                    self.driver.remove(name)
                    return
                except OSError as e:
                    if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                        raise
                await trio.sleep(delay)
                delay = min(delay * 2, 0.05)
        raise ShoalError(f"cgroup {name!r} still has processes after {REMOVE_TIMEOUT:g} s; it was not removed")
