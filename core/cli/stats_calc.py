"""The numbers ``docker stats`` shows, computed from one Engine API stats sample as the docker
CLI computes them (cgroup v1 and v2 samples alike)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .units import bytes_size, human_size


@dataclass(frozen=True)
class StatsRow:
    """One container's line of ``docker stats``."""

    container_id: str
    name: str
    cpu_percent: float
    memory: float
    memory_limit: float
    memory_percent: float
    net_rx: float
    net_tx: float
    block_read: float
    block_write: float
    pids: int

    def cells(self) -> tuple[str, ...]:
        """The table cells: CONTAINER ID, NAME, CPU %, MEM USAGE / LIMIT, MEM %, NET I/O, BLOCK I/O, PIDS."""
        return (
            self.container_id[:12],
            self.name or "--",
            f"{self.cpu_percent:.2f}%",
            f"{bytes_size(self.memory)} / {bytes_size(self.memory_limit)}",
            f"{self.memory_percent:.2f}%",
            f"{human_size(self.net_rx)} / {human_size(self.net_tx)}",
            f"{human_size(self.block_read)} / {human_size(self.block_write)}",
            str(self.pids),
        )


def cpu_percent(sample: dict[str, Any]) -> float:
    """Share of the host's CPUs used between the sample's two readings, times the CPU count."""
    cpu, pre = sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {}
    usage = cpu.get("cpu_usage") or {}
    cpu_delta = usage.get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len(usage.get("percpu_usage") or ())
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(memory_stats: dict[str, Any]) -> float:
    """Usage without the page cache the kernel can drop: cgroup v1 ``total_inactive_file``,
    v2 ``inactive_file``."""
    usage = memory_stats.get("usage") or 0
    stats = memory_stats.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        cache = stats.get(key)
        if cache is not None:
            return usage - cache if cache < usage else usage
    return usage


def block_io(sample: dict[str, Any]) -> tuple[float, float]:
    """Bytes read and written, summed over devices."""
    read = write = 0
    entries = (sample.get("blkio_stats") or {}).get("io_service_bytes_recursive") or ()
    for entry in entries:
        op = (entry.get("op") or "").lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    return read, write


def network_io(sample: dict[str, Any]) -> tuple[float, float]:
    """Bytes received and sent, summed over interfaces."""
    networks = (sample.get("networks") or {}).values()
    return sum(n.get("rx_bytes", 0) for n in networks), sum(n.get("tx_bytes", 0) for n in networks)


def stats_row(sample: dict[str, Any], container_id: str = "", name: str = "") -> StatsRow:
    """One table line from one sample; ``container_id``/``name`` fill in what the sample lacks."""
    memory_stats = sample.get("memory_stats") or {}
    memory = memory_usage(memory_stats)
    limit = memory_stats.get("limit") or 0
    net_rx, net_tx = network_io(sample)
    block_read, block_write = block_io(sample)
    return StatsRow(
        container_id=sample.get("id") or container_id,
        name=(sample.get("name") or name).lstrip("/"),
        cpu_percent=cpu_percent(sample),
        memory=memory,
        memory_limit=limit,
        memory_percent=memory / limit * 100.0 if limit else 0.0,
        net_rx=net_rx,
        net_tx=net_tx,
        block_read=block_read,
        block_write=block_write,
        pids=(sample.get("pids_stats") or {}).get("current") or 0,
    )
