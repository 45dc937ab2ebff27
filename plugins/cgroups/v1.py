"""The cgroup v1 driver: one directory per controller hierarchy (also used on hybrid hosts)."""

from __future__ import annotations

import os
import posixpath
from typing import Any

from shoal.errors import InvalidArgument, NotFound, ShoalError
from shoal.runtime import ResourceLimits
from shoal.slots import ResourceStats

from . import counters, devices
from . import limits as checks
from .driver import CgroupDriver, check_name
from .fs import CgroupFs

#: v1 reports "no memory limit" as the largest page-aligned counter; anything this big is unlimited.
_UNLIMITED = 1 << 62

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

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
    "blkio_weight": "blkio",
}


class V1Driver(CgroupDriver):
    """Drives the per-controller hierarchies of a v1 (or hybrid) host."""

    version = "v1"

    def __init__(self, mounts: dict[str, str], parent: str, fs: CgroupFs | None = None) -> None:
        """Args: ``mounts`` maps each v1 controller to its hierarchy's mount point."""
        super().__init__(parent, fs)
        if not mounts:
            raise ShoalError("no cgroup v1 controller is mounted")
        self.mounts = dict(mounts)

    # ----------------------------------------------------------------- paths

    def _dir(self, controller: str, name: str) -> str:
        return posixpath.join(self.mounts[controller], self.parent, name)

    def _file(self, controller: str, name: str, filename: str) -> str:
        return posixpath.join(self._dir(controller, name), filename)

    def group_dirs(self, name: str) -> list[str]:
        return list(dict.fromkeys(self._dir(c, name) for c in self.mounts))

    def parent_bases(self) -> list[str]:
        return list(dict.fromkeys(self.mounts.values()))

    def procs_dir(self, name: str) -> str:
        return self._dir("pids" if "pids" in self.mounts else next(iter(self.mounts)), name)

    # ----------------------------------------------------------------- create and limits

    def create(self, name: str, limits: ResourceLimits) -> None:
        check_name(name)
        checks.validate(limits, creating=True)
        self._check_controllers(limits)
        self._ensure_parent()
        self._check_cpusets(limits)
        self.claim(name)
        self.create_dirs(name, limits, self._setup)

    def update(self, name: str, limits: ResourceLimits) -> None:
        check_name(name)
        checks.validate(limits, creating=False)
        self._check_controllers(limits)
        if not self.exists(name):
            raise NotFound(f"cgroup {name!r} does not exist")
        self._check_cpusets(limits)
        self._apply(name, limits)

    def _setup(self, name: str, limits: ResourceLimits) -> None:
        if "cpuset" in self.mounts:
            # A new v1 cpuset group starts with no CPUs and no memory nodes and refuses
            # processes until both are set; inherit the parent's unless limits say otherwise.
            for filename, wanted in (("cpuset.cpus", limits.cpuset_cpus), ("cpuset.mems", limits.cpuset_mems)):
                if wanted is None:
                    parent_value = self.fs.read(posixpath.join(self.mounts["cpuset"], self.parent, filename))
                    self.fs.write(self._file("cpuset", name, filename), parent_value.strip())
        if "devices" in self.mounts:
            self.fs.write(self._file("devices", name, "devices.deny"), devices.DENY_ALL)
            for rule in devices.DEFAULT_ALLOW:
                self.fs.write(self._file("devices", name, "devices.allow"), rule)
        self._apply(name, limits)

    def _apply(self, name: str, limits: ResourceLimits) -> None:
        self._apply_memory(name, limits)
        if limits.cpu_shares is not None:
            self.write("cpu_shares", self._file("cpu", name, "cpu.shares"), str(limits.cpu_shares))
        if limits.cpu_period is not None:
            self.write("cpu_period", self._file("cpu", name, "cpu.cfs_period_us"), str(limits.cpu_period))
        if limits.cpu_quota is not None:
            quota = -1 if checks.quota_unlimited(limits.cpu_quota) else limits.cpu_quota
            self.write("cpu_quota", self._file("cpu", name, "cpu.cfs_quota_us"), str(quota))
        if limits.cpuset_cpus is not None:
            self.write("cpuset_cpus", self._file("cpuset", name, "cpuset.cpus"), limits.cpuset_cpus.strip())
        if limits.cpuset_mems is not None:
            self.write("cpuset_mems", self._file("cpuset", name, "cpuset.mems"), limits.cpuset_mems.strip())
        if limits.pids_limit is not None:
            value = "max" if checks.pids_unlimited(limits.pids_limit) else str(limits.pids_limit)
            self.write("pids_limit", self._file("pids", name, "pids.max"), value)
        if limits.blkio_weight is not None:
            for filename in ("blkio.weight", "blkio.bfq.weight"):
                path = self._file("blkio", name, filename)
                if self.fs.exists(path):
                    self.write("blkio_weight", path, str(limits.blkio_weight))
                    break
            else:
                raise InvalidArgument(
                    "blkio_weight: this host's I/O schedulers offer no weight (no blkio.weight or blkio.bfq.weight)"
                )

    def _apply_memory(self, name: str, limits: ResourceLimits) -> None:
        memory, swap = limits.memory, limits.memory_swap
        if swap is not None:
            swap_file = self._file("memory", name, "memory.memsw.limit_in_bytes")
            if not self.fs.exists(swap_file):
                if swap != -1:
                    raise InvalidArgument("memory_swap: this host has no swap accounting (memory.memsw.* missing)")
                swap = None  # "unlimited" is what a host without swap accounting has anyway
        if memory is not None or swap is not None:
            memory_file = self._file("memory", name, "memory.limit_in_bytes")
            # The kernel keeps memory <= memory+swap at every step: raise the total first when
            # it grows, lower the memory limit first when the total shrinks.
            grows = swap is not None and (swap == -1 or swap >= int(self.fs.read(swap_file)))
            if memory is not None and not grows:
                self.write("memory", memory_file, str(memory))
            if swap is not None:
                self.write("memory_swap", swap_file, str(swap))
            if memory is not None and grows:
                self.write("memory", memory_file, str(memory))
        if limits.memory_reservation is not None:
            self.write(
                "memory_reservation",
                self._file("memory", name, "memory.soft_limit_in_bytes"),
                str(limits.memory_reservation),
            )

    def _check_controllers(self, limits: ResourceLimits) -> None:
        for field, controller in _NEEDS.items():
            if getattr(limits, field) is not None and controller not in self.mounts:
                raise InvalidArgument(f"{field}: this host has no cgroup v1 {controller} controller mounted")

    def _check_cpusets(self, limits: ResourceLimits) -> None:
        for field, filename in (("cpuset_cpus", "cpuset.effective_cpus"), ("cpuset_mems", "cpuset.effective_mems")):
            wanted = getattr(limits, field)
            if wanted is not None:
                host = self.fs.read(posixpath.join(self.mounts["cpuset"], filename)).strip()
                checks.check_cpuset(field, wanted, checks.parse_cpuset(field, host) if host else frozenset())

    def _ensure_parent(self) -> None:
        """Create the parent group in every hierarchy; a new cpuset parent inherits the root's sets."""
        parts = self.parent.split("/")
        for controller, base in self.mounts.items():
            for depth in range(1, len(parts) + 1):
                path = posixpath.join(base, *parts[:depth])
                if not self.fs.exists(path):
                    self.fs.mkdir(path)
                if controller == "cpuset":
                    above = posixpath.dirname(path)
                    for filename in ("cpuset.cpus", "cpuset.mems"):
                        if not self.fs.read(posixpath.join(path, filename)).strip():
                            value = self.fs.read(posixpath.join(above, filename)).strip()
                            self.fs.write(posixpath.join(path, filename), value)

    # ----------------------------------------------------------------- freezer

    def set_frozen(self, name: str, frozen: bool) -> None:
        if "freezer" not in self.mounts:
            raise ShoalError("this host has no cgroup v1 freezer controller mounted: cannot pause")
        try:
            self.fs.write(self._file("freezer", name, "freezer.state"), "FROZEN" if frozen else "THAWED")
        except FileNotFoundError:
            raise NotFound(f"cgroup {name!r} does not exist") from None

    def frozen_settled(self, name: str, frozen: bool) -> bool:
        state = self.read(self._file("freezer", name, "freezer.state"), name).strip()
        return state == ("FROZEN" if frozen else "THAWED")

    # ----------------------------------------------------------------- readings

    def oom_killed(self, name: str) -> bool:
        control = counters.parse_flat(self.read(self._file("memory", name, "memory.oom_control"), name))
        return control.get("oom_kill", 0) > 0

    def stats(self, name: str) -> ResourceStats:
        raw: dict[str, Any] = {"cgroup": self.version}
        memory_usage, memory_limit = 0, None
        if "memory" in self.mounts:
            memory_usage = int(self.read(self._file("memory", name, "memory.usage_in_bytes"), name))
            kernel_limit = int(self.read(self._file("memory", name, "memory.limit_in_bytes"), name))
            memory_limit = None if kernel_limit >= _UNLIMITED else kernel_limit
            raw["memory_stats"] = {
                "usage": memory_usage,
                "max_usage": int(self.read(self._file("memory", name, "memory.max_usage_in_bytes"), name)),
                "failcnt": int(self.read(self._file("memory", name, "memory.failcnt"), name)),
                "limit": kernel_limit,
                "stats": counters.parse_flat(self.read(self._file("memory", name, "memory.stat"), name)),
            }
        cpu_usage = 0
        if "cpuacct" in self.mounts:
            cpu_usage = int(self.read(self._file("cpuacct", name, "cpuacct.usage"), name))
            ticks = counters.parse_flat(self.read(self._file("cpuacct", name, "cpuacct.stat"), name))
            raw["cpu_stats"] = {
                "cpu_usage": {
                    "total_usage": cpu_usage,
                    "percpu_usage": counters.parse_list(
                        self.read(self._file("cpuacct", name, "cpuacct.usage_percpu"), name)
                    ),
                    "usage_in_usermode": ticks.get("user", 0) * 1_000_000_000 // _CLOCK_TICKS,
                    "usage_in_kernelmode": ticks.get("system", 0) * 1_000_000_000 // _CLOCK_TICKS,
                },
            }
        if "cpu" in self.mounts:
            throttling = counters.parse_flat(self.read(self._file("cpu", name, "cpu.stat"), name))
            raw.setdefault("cpu_stats", {})["throttling_data"] = {
                "periods": throttling.get("nr_periods", 0),
                "throttled_periods": throttling.get("nr_throttled", 0),
                "throttled_time": throttling.get("throttled_time", 0),
            }
        pids = 0
        if "pids" in self.mounts:
            pids = int(self.read(self._file("pids", name, "pids.current"), name))
            limit = counters.parse_int(self.read(self._file("pids", name, "pids.max"), name))
            raw["pids_stats"] = {"current": pids, "limit": limit}
        io_read = io_write = 0
        if "blkio" in self.mounts:
            entries = self._io_service_bytes(name)
            raw["blkio_stats"] = {"io_service_bytes_recursive": entries}
            io_read = sum(int(e["value"]) for e in entries if e["op"] == "Read")
            io_write = sum(int(e["value"]) for e in entries if e["op"] == "Write")
        return ResourceStats(
            memory_usage=memory_usage,
            memory_limit=memory_limit,
            cpu_usage_ns=cpu_usage,
            pids=pids,
            io_read_bytes=io_read,
            io_write_bytes=io_write,
            raw=raw,
        )

    def _io_service_bytes(self, name: str) -> list[dict[str, int | str]]:
        # The throttle policy counts every bio; the BFQ file only covers devices BFQ schedules.
        for filename in ("blkio.throttle.io_service_bytes_recursive", "blkio.bfq.io_service_bytes_recursive"):
            path = self._file("blkio", name, filename)
            if self.fs.exists(path):
                entries = counters.parse_blkio(self.fs.read(path))
                if entries:
                    return entries
        return []
