"""Linux capabilities: names, Docker's default set, and applying a kept set to the caller."""

from __future__ import annotations

from collections.abc import Iterable

from shoal.runtime import CAPABILITY_NAMES, DEFAULT_CAPABILITIES

from . import syscalls

__all__ = ["CAPABILITY_NAMES", "DEFAULT_CAPABILITIES", "to_mask", "drop_bounding", "set_process_caps", "last_cap"]

_NUMBERS = {name: number for number, name in enumerate(CAPABILITY_NAMES)}


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def to_mask(names: Iterable[str]) -> int:
    """Turn capability names ("CAP_KILL" or "KILL", any case) into a bit mask.

    Raises ``ValueError`` naming an unknown capability.
    """
    mask = 0
    for name in names:
        key = name.upper()
        if not key.startswith("CAP_"):
            key = "CAP_" + key
        if key not in _NUMBERS:
            raise ValueError(f"unknown capability: {name!r}")
        mask |= 1 << _NUMBERS[key]
    return mask


def drop_bounding(keep: int, top: int) -> None:
    """Remove every capability outside ``keep`` from the bounding set (needs CAP_SETPCAP)."""
    for number in range(top + 1):
        if not keep & (1 << number):
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, number)


def set_process_caps(keep: int, top: int) -> None:
    """Make ``keep`` the effective, permitted and inheritable sets and clear the ambient set."""
    keep &= (1 << (top + 1)) - 1
    syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    syscalls.capset(keep, keep, keep)
