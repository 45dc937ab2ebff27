"""The cgroup v2 driver: one unified hierarchy, controllers enabled down the tree.

Device access is not enforced by this driver: cgroup v2 has no devices controller, and the
equivalent policy needs an eBPF program attached to each group, which is not installed here.
"""

from __future__ import annotations

import posixpath
from typing import Any

from shoal.errors import InvalidArgument, NotFound
from shoal.runtime import ResourceLimits
from shoal.slots import ResourceStats

from . import counters
from . import limits as checks
from .driver import CgroupDriver, check_name
from .fs import CgroupFs

#: Controllers a container's group gets, where the hierarchy offers them.
CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")

#: Limit fields and the controller each needs.
_NEEDS = {
    "memory": "memory",
    "memory_swap": "memory",
    "memory_reservation": "memory",
    "cpu_shares": "cpu",
    "cpu_quota": "cpu",
    "cpu_period": "cpu",
    "cpuset_cpus": "cpuset",
    "cpuset_mems": "cpuset",
    "pids_limit": "pids",
    "blkio_weight": "io",
}


class V2Driver(CgroupDriver):
    """Drives the unified cgroup2 hierarchy mounted at ``root``."""

    version = "v2"

    def __init__(self, root: str, parent: str, fs: CgroupFs | None = None) -> None:
        super().__init__(parent, fs)
        self.root = root

    def _dir(self, name: str) -> str:
        return posixpath.join(self.root, self.parent, name)

    def _file(self, name: str, filename: str) -> str:
        return posixpath.join(self._dir(name), filename)

    def group_dirs(self, name: str) -> list[str]:
        return [self._dir(name)]

    def parent_bases(self) -> list[str]:
        return [self.root]

    def procs_dir(self, name: str) -> str:
        return self._dir(name)

    # ----------------------------------------------------------------- create and limits

    def create(self, name: str, limits: ResourceLimits) -> None:
        check_name(name)
        checks.validate(limits, creating=True)
        enabled = self._ensure_parent()
        self._check_controllers(limits, enabled)
        self._check_cpusets(limits)
        self.claim(name)
        self.create_dirs(name, limits, self._apply)

    def update(self, name: str, limits: ResourceLimits) -> None:
        check_name(name)
        checks.validate(limits, creating=False)
        if not self.exists(name):
            raise NotFound(f"cgroup {name!r} does not exist")
        self._check_controllers(limits, set(self.read(self._file(name, "cgroup.controllers"), name).split()))
        self._check_cpusets(limits)
        self._apply(name, limits)

    def _apply(self, name: str, limits: ResourceLimits) -> None:
        if limits.memory is not None:
            self.write("memory", self._file(name, "memory.max"), str(limits.memory))
        if limits.memory_swap is not None:
            self._apply_swap(name, limits)
        if limits.memory_reservation is not None:
            self.write("memory_reservation", self._file(name, "memory.low"), str(limits.memory_reservation))
        if limits.cpu_shares is not None:
            self.write("cpu_shares", self._file(name, "cpu.weight"), str(checks.shares_to_weight(limits.cpu_shares)))
        if limits.cpu_quota is not None or limits.cpu_period is not None:
            self._apply_cpu_max(name, limits)
        if limits.cpuset_cpus is not None:
            self.write("cpuset_cpus", self._file(name, "cpuset.cpus"), limits.cpuset_cpus.strip())
        if limits.cpuset_mems is not None:
            self.write("cpuset_mems", self._file(name, "cpuset.mems"), limits.cpuset_mems.strip())
        if limits.pids_limit is not None:
            value = "max" if checks.pids_unlimited(limits.pids_limit) else str(limits.pids_limit)
            self.write("pids_limit", self._file(name, "pids.max"), value)
        if limits.blkio_weight is not None:
            self._apply_io_weight(name, limits.blkio_weight)

    def _apply_swap(self, name: str, limits: ResourceLimits) -> None:
        # Docker's memory_swap is memory plus swap; v2's memory.swap.max counts swap alone.
        path = self._file(name, "memory.swap.max")
        if not self.fs.exists(path):
            if limits.memory_swap == -1:
                return  # no swap accounting: swap is not limited, which is what -1 asks for
            raise InvalidArgument("memory_swap: this host has no swap accounting (memory.swap.max missing)")
        if limits.memory_swap == -1:
            self.write("memory_swap", path, "max")
            return
        assert limits.memory_swap is not None
        memory = limits.memory
        if memory is None:
            memory = counters.parse_int(self.read(self._file(name, "memory.max"), name))
            if memory is None:
                raise InvalidArgument("memory_swap: a memory+swap limit needs a memory limit too")
        if limits.memory_swap < memory:
            raise InvalidArgument(
                f"memory_swap: {limits.memory_swap} (memory plus swap) is below the memory limit {memory}"
            )
        self.write("memory_swap", path, str(limits.memory_swap - memory))

    def _apply_cpu_max(self, name: str, limits: ResourceLimits) -> None:
        path = self._file(name, "cpu.max")
        if limits.cpu_quota is None:
            quota = self.read(path, name).split()[0]  # keep the quota, change the period
        else:
            quota = "max" if checks.quota_unlimited(limits.cpu_quota) else str(limits.cpu_quota)
        value = quota if limits.cpu_period is None else f"{quota} {limits.cpu_period}"
        self.write("cpu_quota" if limits.cpu_quota is not None else "cpu_period", path, value)

    def _apply_io_weight(self, name: str, weight: int) -> None:
        # BFQ takes the blkio scale as it is; io.weight (iocost) has its own 1..10000 scale.
        bfq = self._file(name, "io.bfq.weight")
        if self.fs.exists(bfq):
            self.write("blkio_weight", bfq, str(weight))
            return
        cost = self._file(name, "io.weight")
        if self.fs.exists(cost):
            self.write("blkio_weight", cost, f"default {checks.blkio_to_io_weight(weight)}")
            return
        raise InvalidArgument("blkio_weight: this host's I/O schedulers offer no weight (no io.bfq.weight or io.weight)")

    def _check_controllers(self, limits: ResourceLimits, enabled: set[str]) -> None:
        for field, controller in _NEEDS.items():
            if getattr(limits, field) is not None and controller not in enabled:
                raise InvalidArgument(f"{field}: the cgroup v2 hierarchy offers no {controller} controller here")

    def _check_cpusets(self, limits: ResourceLimits) -> None:
        for field, filename in (("cpuset_cpus", "cpuset.cpus.effective"), ("cpuset_mems", "cpuset.mems.effective")):
            wanted = getattr(limits, field)
            if wanted is not None:
                host = self.fs.read(posixpath.join(self.root, filename)).strip()
                checks.check_cpuset(field, wanted, checks.parse_cpuset(field, host) if host else frozenset())

    def _ensure_parent(self) -> set[str]:
        """Create the parent group and enable our controllers down to it.

        Returns:
            The controllers a container group made under the parent will have.
        """
        path = self.root
        for part in self.parent.split("/"):
            self._enable_controllers(path)
            path = posixpath.join(path, part)
            if not self.fs.exists(path):
                self.fs.mkdir(path)
        self._enable_controllers(path)
        return set(self.fs.read(posixpath.join(path, "cgroup.subtree_control")).split())

    def _enable_controllers(self, path: str) -> None:
        available = set(self.fs.read(posixpath.join(path, "cgroup.controllers")).split())
        enabled = set(self.fs.read(posixpath.join(path, "cgroup.subtree_control")).split())
        missing = [c for c in CONTROLLERS if c in available and c not in enabled]
        if missing:
            self.fs.write(posixpath.join(path, "cgroup.subtree_control"), " ".join(f"+{c}" for c in missing))

    # ----------------------------------------------------------------- freezer

    def set_frozen(self, name: str, frozen: bool) -> None:
        try:
            self.fs.write(self._file(name, "cgroup.freeze"), "1" if frozen else "0")
        except FileNotFoundError:
            raise NotFound(f"cgroup {name!r} does not exist") from None

    def frozen_settled(self, name: str, frozen: bool) -> bool:
        events = counters.parse_flat(self.read(self._file(name, "cgroup.events"), name))
        return events.get("frozen", 0) == (1 if frozen else 0)

    # ----------------------------------------------------------------- readings

    def oom_killed(self, name: str) -> bool:
        events = counters.parse_flat(self.read(self._file(name, "memory.events"), name))
        return events.get("oom_kill", 0) > 0

    def stats(self, name: str) -> ResourceStats:
        controllers = set(self.read(self._file(name, "cgroup.controllers"), name).split())
        raw: dict[str, Any] = {"cgroup": self.version}
        memory_usage, memory_limit = 0, None
        if "memory" in controllers:
            memory_usage = int(self.read(self._file(name, "memory.current"), name))
            memory_limit = counters.parse_int(self.read(self._file(name, "memory.max"), name))
            raw["memory_stats"] = {
                "usage": memory_usage,
                "limit": memory_limit,
                "stats": counters.parse_flat(self.read(self._file(name, "memory.stat"), name)),
                "events": counters.parse_flat(self.read(self._file(name, "memory.events"), name)),
            }
        # cpu.stat is there even without the cpu controller (usage only, no throttling).
        cpu = counters.parse_flat(self.read(self._file(name, "cpu.stat"), name))
        cpu_usage = cpu.get("usage_usec", 0) * 1000
        raw["cpu_stats"] = {
            "cpu_usage": {
                "total_usage": cpu_usage,
                "usage_in_usermode": cpu.get("user_usec", 0) * 1000,
                "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000,
            },
            "throttling_data": {
                "periods": cpu.get("nr_periods", 0),
                "throttled_periods": cpu.get("nr_throttled", 0),
                "throttled_time": cpu.get("throttled_usec", 0) * 1000,
            },
        }
        pids = 0
        if "pids" in controllers:
            pids = int(self.read(self._file(name, "pids.current"), name))
            raw["pids_stats"] = {
                "current": pids,
                "limit": counters.parse_int(self.read(self._file(name, "pids.max"), name)),
            }
        io_read = io_write = 0
        if "io" in controllers:
            entries: list[dict[str, int | str]] = []
            for (major, minor), values in counters.parse_io_stat(self.read(self._file(name, "io.stat"), name)).items():
                for op, key in (("read", "rbytes"), ("write", "wbytes")):
                    entries.append({"major": major, "minor": minor, "op": op, "value": values.get(key, 0)})
            raw["blkio_stats"] = {"io_service_bytes_recursive": entries}
            io_read = sum(int(e["value"]) for e in entries if e["op"] == "read")
            io_write = sum(int(e["value"]) for e in entries if e["op"] == "write")
        return ResourceStats(
            memory_usage=memory_usage,
            memory_limit=memory_limit,
            cpu_usage_ns=cpu_usage,
            pids=pids,
            io_read_bytes=io_read,
            io_write_bytes=io_write,
            raw=raw,
        )
