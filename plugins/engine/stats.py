"""One stats sample in the shape of Docker's ``ContainerStatsResponse``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from shoal.slots import ResourceStats

from .logs import rfc3339_nano

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def system_cpu_usage() -> int:
    """Host CPU time in nanoseconds, from /proc/stat's first line (as Docker computes it)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(v) for v in fields) * 1_000_000_000 // _CLOCK_TICKS


def network_stats(pid: int) -> dict[str, dict[str, int]]:
    """Counters of every interface but lo in the network namespace of ``pid`` (/proc/PID/net/dev)."""
    networks = {}
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return {}
    for line in lines:
        name, _, counters = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        v = [int(x) for x in counters.split()]
        networks[name] = {
            "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
            "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11],
        }  # fmt: skip
    return networks


def docker_stats(container_id: str, name: str, reading: ResourceStats | None, pid: int | None = None) -> dict[str, Any]:
    """A sample; a stopped container gives Docker's zeroed one."""
    raw = dict(reading.raw) if reading is not None else {}
    cpus = os.cpu_count() or 1
    cpu_stats = raw.get("cpu_stats") or {
        "cpu_usage": {"total_usage": reading.cpu_usage_ns if reading else 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }
    cpu_stats = dict(cpu_stats)
    cpu_stats["system_cpu_usage"] = system_cpu_usage() if reading else 0
    cpu_stats["online_cpus"] = cpus if reading else 0
    memory = raw.get("memory_stats") or (
        {"usage": reading.memory_usage, "limit": reading.memory_limit or 0, "stats": {}} if reading else {}
    )
    return {
        "id": container_id,
        "name": name,
        "read": rfc3339_nano(time.time_ns()) if reading else "0001-01-01T00:00:00Z",
        "preread": "0001-01-01T00:00:00Z",
        "num_procs": 0,
        "pids_stats": raw.get("pids_stats") or ({"current": reading.pids} if reading else {}),
        "blkio_stats": raw.get("blkio_stats") or {"io_service_bytes_recursive": None},
        "cpu_stats": cpu_stats,
        "precpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
        "memory_stats": memory,
        "storage_stats": {},
        **({"networks": network_stats(pid)} if pid else {}),
    }
