"""Limit checks, conversions and stat file parsing shared by both drivers."""

from __future__ import annotations

import pytest

from shoal.errors import InvalidArgument
from shoal.plugins.cgroups import counters
from shoal.plugins.cgroups.driver import check_name, check_parent
from shoal.plugins.cgroups.limits import (
    blkio_to_io_weight,
    check_cpuset,
    format_cpuset,
    parse_cpuset,
    shares_to_weight,
    validate,
)
from shoal.runtime import ResourceLimits

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (ResourceLimits(memory=4 * MiB), "memory"),
        (ResourceLimits(memory=64 * MiB, memory_swap=32 * MiB), "memory_swap"),
        (ResourceLimits(memory_swap=128 * MiB), "memory_swap"),
        (ResourceLimits(memory_reservation=MiB), "memory_reservation"),
        (ResourceLimits(memory=64 * MiB, memory_reservation=128 * MiB), "memory_reservation"),
        (ResourceLimits(cpu_shares=1), "cpu_shares"),
        (ResourceLimits(cpu_shares=262145), "cpu_shares"),
        (ResourceLimits(cpu_period=999), "cpu_period"),
        (ResourceLimits(cpu_period=1_000_001), "cpu_period"),
        (ResourceLimits(cpu_quota=999), "cpu_quota"),
        (ResourceLimits(cpuset_cpus="1-0"), "cpuset_cpus"),
        (ResourceLimits(cpuset_mems="zero"), "cpuset_mems"),
        (ResourceLimits(pids_limit=-2), "pids_limit"),
        (ResourceLimits(blkio_weight=5), "blkio_weight"),
        (ResourceLimits(blkio_weight=1001), "blkio_weight"),
    ],
)
def test_invalid_limits_name_their_field(limits: ResourceLimits, field: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"^{field}: "):
        validate(limits, creating=True)


def test_valid_limits_pass() -> None:
    validate(
        ResourceLimits(
            memory=6 * MiB,
            memory_swap=-1,
            memory_reservation=6 * MiB,
            cpu_shares=2,
            cpu_quota=-1,
            cpu_period=1000,
            cpuset_cpus="0-1,3",
            cpuset_mems="0",
            pids_limit=0,
            blkio_weight=10,
        ),
        creating=True,
    )
    validate(ResourceLimits(memory=64 * MiB, memory_swap=64 * MiB), creating=True)
    # An update may change the total alone, against the limit the group already has.
    validate(ResourceLimits(memory_swap=128 * MiB), creating=False)


def test_cpuset_lists() -> None:
    assert parse_cpuset("cpuset_cpus", " 0-2,5 ") == {0, 1, 2, 5}
    assert format_cpuset(frozenset({0, 1, 2, 5, 7, 8})) == "0-2,5,7-8"
    assert check_cpuset("cpuset_cpus", "1,3 ", frozenset(range(4))) == "1,3"
    with pytest.raises(InvalidArgument, match=r"^cpuset_cpus: '0-7' names 4-7, which this host does not have"):
        check_cpuset("cpuset_cpus", "0-7", frozenset(range(4)))
    with pytest.raises(InvalidArgument, match="^cpuset_mems: empty"):
        parse_cpuset("cpuset_mems", "")


def test_weight_conversions() -> None:
    assert [shares_to_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]
    assert [blkio_to_io_weight(w) for w in (10, 500, 1000)] == [1, 4950, 10000]


def test_names_and_parents() -> None:
    for bad in ("", ".", "..", "a/b"):
        with pytest.raises(InvalidArgument, match="^name: "):
            check_name(bad)
    assert check_parent("/system.slice/shoal/") == "system.slice/shoal"
    for bad in ("", "/", "a/../b"):
        with pytest.raises(InvalidArgument, match="^parent: "):
            check_parent(bad)


def test_counter_formats() -> None:
    assert counters.parse_int("max\n") is None and counters.parse_int("42\n") == 42
    assert counters.parse_flat("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")["oom_kill"] == 2
    assert counters.parse_list("1 2 3 \n") == [1, 2, 3]
    assert counters.parse_io_stat("8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n") == {
        (8, 0): {"rbytes": 10, "wbytes": 20, "rios": 1, "wios": 2, "dbytes": 0, "dios": 0}
    }
    assert counters.parse_blkio("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n") == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096},
        {"major": 8, "minor": 0, "op": "Write", "value": 0},
    ]
