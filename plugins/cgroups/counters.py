"""Parsers for the formats of cgroup statistic files."""

from __future__ import annotations


def parse_int(text: str) -> int | None:
    """Parse a single value; "max" (cgroup v2's "no limit") gives None."""
    text = text.strip()
    return None if text == "max" else int(text)


def parse_flat(text: str) -> dict[str, int]:
    """Parse "key value" lines (memory.stat, cpu.stat, memory.events, memory.oom_control)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value:
            values[key] = int(value)
    return values


def parse_list(text: str) -> list[int]:
    """Parse a space-separated list of numbers (cpuacct.usage_percpu)."""
    return [int(v) for v in text.split()]


def parse_io_stat(text: str) -> dict[tuple[int, int], dict[str, int]]:
    """Parse cgroup v2's io.stat: "MAJ:MIN rbytes=1 wbytes=2 ..." per device."""
    devices: dict[tuple[int, int], dict[str, int]] = {}
    for line in text.splitlines():
        device, *pairs = line.split()
        major, _, minor = device.partition(":")
        counters = devices.setdefault((int(major), int(minor)), {})
        for pair in pairs:
            key, _, value = pair.partition("=")
            counters[key] = int(value)
    return devices


def parse_blkio(text: str) -> list[dict[str, int | str]]:
    """Parse a cgroup v1 blkio file ("MAJ:MIN Op value" lines) into Docker's entry shape."""
    entries: list[dict[str, int | str]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue  # the closing "Total N" line
        major, _, minor = parts[0].partition(":")
        entries.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return entries
