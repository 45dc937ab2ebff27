"""Checks and unit conversions of ``ResourceLimits``, shared by the v1 and v2 drivers.

The rules follow what Docker accepts, so a request Docker refuses is refused here too with the
offending field named, before anything is created.
"""

from __future__ import annotations

from shoal.errors import InvalidArgument
from shoal.runtime import ResourceLimits

#: Docker refuses memory limits and reservations below 6 MiB.
MIN_MEMORY = 6 * 1024 * 1024
MIN_SHARES, MAX_SHARES = 2, 262144
MIN_CPU_PERIOD, MAX_CPU_PERIOD = 1000, 1_000_000
MIN_CPU_QUOTA = 1000
MIN_BLKIO_WEIGHT, MAX_BLKIO_WEIGHT = 10, 1000


def _mib(value: int) -> str:
    return f"{value} bytes ({value / 1024 / 1024:.1f} MiB)"


def validate(limits: ResourceLimits, *, creating: bool) -> None:
    """Refuse limits that can never be valid, naming the field.

    Args:
        limits: the requested limits.
        creating: True for a new group; an update may then set ``memory_swap`` alone,
            against the memory limit the group already has.
    """
    if limits.memory is not None and limits.memory < MIN_MEMORY:
        raise InvalidArgument(f"memory: {_mib(limits.memory)} is below the minimum of 6 MiB")
    if limits.memory_swap is not None and limits.memory_swap != -1:
        if limits.memory is None:
            if creating:
                raise InvalidArgument("memory_swap: a memory+swap limit needs a memory limit too")
        elif limits.memory_swap < limits.memory:
            raise InvalidArgument(
                f"memory_swap: {limits.memory_swap} (memory plus swap) is below the memory limit {limits.memory}"
            )
    if limits.memory_reservation is not None:
        if limits.memory_reservation < MIN_MEMORY:
            raise InvalidArgument(
                f"memory_reservation: {_mib(limits.memory_reservation)} is below the minimum of 6 MiB"
            )
        if limits.memory is not None and limits.memory_reservation > limits.memory:
            raise InvalidArgument(
                f"memory_reservation: {limits.memory_reservation} is above the memory limit {limits.memory}"
            )
    if limits.cpu_shares is not None and not MIN_SHARES <= limits.cpu_shares <= MAX_SHARES:
        raise InvalidArgument(f"cpu_shares: {limits.cpu_shares} is outside {MIN_SHARES}..{MAX_SHARES}")
    if limits.cpu_period is not None and not MIN_CPU_PERIOD <= limits.cpu_period <= MAX_CPU_PERIOD:
        raise InvalidArgument(
            f"cpu_period: {limits.cpu_period} us is outside {MIN_CPU_PERIOD}..{MAX_CPU_PERIOD} us"
        )
    if limits.cpu_quota is not None and limits.cpu_quota not in (-1, 0) and limits.cpu_quota < MIN_CPU_QUOTA:
        raise InvalidArgument(
            f"cpu_quota: {limits.cpu_quota} us is below the minimum of {MIN_CPU_QUOTA} us (-1 for no limit)"
        )
    if limits.cpuset_cpus is not None:
        parse_cpuset("cpuset_cpus", limits.cpuset_cpus)
    if limits.cpuset_mems is not None:
        parse_cpuset("cpuset_mems", limits.cpuset_mems)
    if limits.pids_limit is not None and limits.pids_limit < -1:
        raise InvalidArgument(f"pids_limit: {limits.pids_limit} is negative (-1 or 0 for no limit)")
    if limits.blkio_weight is not None and not MIN_BLKIO_WEIGHT <= limits.blkio_weight <= MAX_BLKIO_WEIGHT:
        raise InvalidArgument(
            f"blkio_weight: {limits.blkio_weight} is outside {MIN_BLKIO_WEIGHT}..{MAX_BLKIO_WEIGHT}"
        )


def parse_cpuset(field: str, text: str) -> frozenset[int]:
    """Parse a cpuset list ("0-3,6") into its numbers; ``field`` names it in errors."""
    numbers: set[int] = set()
    if not text.strip():
        raise InvalidArgument(f"{field}: empty list")
    for part in text.strip().split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise InvalidArgument(f"{field}: {text!r} is not a list like '0-3,6'") from None
        if first < 0 or last < first:
            raise InvalidArgument(f"{field}: {text!r} has an invalid range {part.strip()!r}")
        numbers.update(range(first, last + 1))
    return frozenset(numbers)


def check_cpuset(field: str, text: str, available: frozenset[int]) -> str:
    """Check that a cpuset list names only CPUs (or memory nodes) the host has.

    Returns:
        The list, stripped, ready to be written.
    """
    missing = parse_cpuset(field, text) - available
    if missing:
        raise InvalidArgument(
            f"{field}: {text!r} names {format_cpuset(missing)}, which this host does not have "
            f"(available: {format_cpuset(available)})"
        )
    return text.strip()


def format_cpuset(numbers: frozenset[int]) -> str:
    """Write numbers as a cpuset list ("0-3,6")."""
    ranges: list[list[int]] = []
    for n in sorted(numbers):
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def shares_to_weight(shares: int) -> int:
    """Map Docker's cpu shares (2..262144) linearly onto cgroup v2's cpu.weight (1..10000)."""
    return 1 + ((shares - MIN_SHARES) * 9999) // (MAX_SHARES - MIN_SHARES)


def blkio_to_io_weight(weight: int) -> int:
    """Map a blkio weight (10..1000) linearly onto cgroup v2's io.weight (1..10000)."""
    return 1 + ((weight - MIN_BLKIO_WEIGHT) * 9999) // (MAX_BLKIO_WEIGHT - MIN_BLKIO_WEIGHT)


def quota_unlimited(quota: int) -> bool:
    """Tell whether a cpu quota means "no limit" (-1, or 0 as Docker's API sends it)."""
    return quota in (-1, 0)


def pids_unlimited(limit: int) -> bool:
    """Tell whether a pids limit means "no limit" (-1 or 0, as in Docker)."""
    return limit <= 0
