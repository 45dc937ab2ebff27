"""The v2 driver and the async provider against a fake cgroup2 tree."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from shoal.errors import Conflict, InvalidArgument, NotFound, ShoalError
from shoal.plugins.cgroups import resources as resources_module
from shoal.plugins.cgroups.resources import CgroupResources
from shoal.plugins.cgroups.v2 import V2Driver
from shoal.runtime import ResourceLimits
from shoal.slots import Resources

MiB = 1024 * 1024


def provider(fake, parent: str = "shoal") -> CgroupResources:
    return CgroupResources(V2Driver(str(fake.root), parent, fake))


def read(fake, rel: str) -> str:
    return (Path(fake.root) / rel).read_text().strip()


def test_provider_fills_the_resources_slot(fake) -> None:
    assert isinstance(provider(fake), Resources)


async def test_create_writes_every_limit(fake) -> None:
    res = provider(fake, "system.slice/shoal")
    await res.create(
        "c1",
        ResourceLimits(
            memory=64 * MiB,
            memory_swap=96 * MiB,
            memory_reservation=32 * MiB,
            cpu_shares=1024,
            cpu_quota=150000,
            cpu_period=100000,
            cpuset_cpus="1-2",
            cpuset_mems="0",
            pids_limit=100,
            blkio_weight=500,
        ),
    )
    group = "system.slice/shoal/c1"
    assert read(fake, f"{group}/memory.max") == str(64 * MiB)
    assert read(fake, f"{group}/memory.swap.max") == str(32 * MiB)  # swap alone: total minus memory
    assert read(fake, f"{group}/memory.low") == str(32 * MiB)
    assert read(fake, f"{group}/cpu.weight") == "39"
    assert read(fake, f"{group}/cpu.max") == "150000 100000"
    assert read(fake, f"{group}/cpuset.cpus") == "1-2"
    assert read(fake, f"{group}/cpuset.mems") == "0"
    assert read(fake, f"{group}/pids.max") == "100"
    assert read(fake, f"{group}/io.weight") == "default 4950"
    # Controllers were enabled at every level down to the parent, and only once.
    for level in ("", "system.slice", "system.slice/shoal"):
        assert read(fake, f"{level}/cgroup.subtree_control".lstrip("/")) == "cpu cpuset io memory pids"
    assert sum(1 for path, _ in fake.writes if path.endswith("subtree_control")) == 3
    assert read(fake, f"{group}/cgroup.controllers") == "cpu cpuset io memory pids"


async def test_unlimited_values_and_bfq(make_fake) -> None:
    fake = make_fake(bfq=True)
    res = provider(fake)
    await res.create(
        "c1", ResourceLimits(memory=64 * MiB, memory_swap=-1, cpu_quota=-1, pids_limit=0, blkio_weight=300)
    )
    assert read(fake, "shoal/c1/memory.swap.max") == "max"
    assert read(fake, "shoal/c1/cpu.max") == "max"
    assert read(fake, "shoal/c1/pids.max") == "max"
    assert read(fake, "shoal/c1/io.bfq.weight") == "300"  # BFQ takes the blkio scale as it is


async def test_nothing_set_writes_no_limit(fake) -> None:
    await provider(fake).create("c1", ResourceLimits())
    assert [p for p, _ in fake.writes if p.startswith("shoal/c1")] == []
    assert read(fake, "shoal/c1/memory.max") == "max"


async def test_update_keeps_what_is_not_set(fake) -> None:
    res = provider(fake)
    await res.create("c1", ResourceLimits(memory=64 * MiB, cpu_quota=50000))
    await res.update("c1", ResourceLimits(cpu_period=200000))
    assert read(fake, "shoal/c1/cpu.max") == "50000 200000"
    await res.update("c1", ResourceLimits(memory_swap=100 * MiB))  # against the current memory.max
    assert read(fake, "shoal/c1/memory.swap.max") == str(36 * MiB)
    with pytest.raises(InvalidArgument, match="^memory_swap: .* below the memory limit"):
        await res.update("c1", ResourceLimits(memory_swap=32 * MiB))
    await res.update("c1", ResourceLimits(memory=128 * MiB, memory_swap=128 * MiB, cpu_shares=2))
    assert read(fake, "shoal/c1/memory.max") == str(128 * MiB)
    assert read(fake, "shoal/c1/memory.swap.max") == "0"
    assert read(fake, "shoal/c1/cpu.weight") == "1"
    with pytest.raises(NotFound, match="'missing' does not exist"):
        await res.update("missing", ResourceLimits(memory=64 * MiB))


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (ResourceLimits(memory=5 * MiB), "memory"),
        (ResourceLimits(cpuset_cpus="0-7"), "cpuset_cpus"),
        (ResourceLimits(cpuset_mems="1"), "cpuset_mems"),
        (ResourceLimits(cpu_shares=0), "cpu_shares"),
    ],
)
async def test_invalid_limits_leave_no_group(fake, limits: ResourceLimits, field: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"^{field}: "):
        await provider(fake).create("c1", limits)
    assert not (fake.root / "shoal" / "c1").exists()


async def test_a_limit_the_host_cannot_apply_leaves_no_group(make_fake) -> None:
    fake = make_fake(("hugetlb",))  # a hybrid host's unified mount
    with pytest.raises(InvalidArgument, match="^memory: the cgroup v2 hierarchy offers no memory controller"):
        await provider(fake).create("c1", ResourceLimits(memory=64 * MiB))
    assert not (fake.root / "shoal" / "c1").exists()

    fake = make_fake(swap=False)
    with pytest.raises(InvalidArgument, match="^memory_swap: this host has no swap accounting"):
        await provider(fake).create("c2", ResourceLimits(memory=64 * MiB, memory_swap=128 * MiB))
    assert not (fake.root / "shoal" / "c2").exists()
    await provider(fake).create("c3", ResourceLimits(memory=64 * MiB, memory_swap=-1))  # nothing to limit


async def test_a_kernel_refusal_names_the_field_and_rolls_back(fake, monkeypatch) -> None:
    write = fake.write

    def refuse_pids(path: str, value: str) -> None:
        if path.endswith("pids.max"):
            raise OSError(22, "Invalid argument")
        write(path, value)

    monkeypatch.setattr(fake, "write", refuse_pids)
    with pytest.raises(InvalidArgument, match=r"^pids_limit: the kernel refused '99999999999' \(Invalid argument\)"):
        await provider(fake).create("c1", ResourceLimits(memory=64 * MiB, pids_limit=99999999999))
    assert not (fake.root / "shoal" / "c1").exists()


async def test_processes_freeze_and_stats(fake) -> None:
    res = provider(fake)
    await res.create("c1", ResourceLimits(memory=64 * MiB))
    await res.add_process("c1", 4242)
    assert read(fake, "shoal/c1/cgroup.procs") == "4242"
    assert await res.pids("c1") == [4242]

    await res.freeze("c1", True)
    assert read(fake, "shoal/c1/cgroup.freeze") == "1"
    await res.freeze("c1", False)
    assert read(fake, "shoal/c1/cgroup.freeze") == "0"

    group = fake.root / "shoal" / "c1"
    (group / "memory.current").write_text("1048576\n")
    (group / "memory.stat").write_text("anon 1048576\nfile 0\ninactive_file 0\n")
    (group / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\nnr_throttled 1\nthrottled_usec 7\n")
    (group / "pids.current").write_text("1\n")
    (group / "io.stat").write_text("254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:0 rbytes=1 wbytes=0\n")
    stats = await res.stats("c1")
    assert (stats.memory_usage, stats.memory_limit, stats.cpu_usage_ns, stats.pids) == (MiB, 64 * MiB, 1_500_000, 1)
    assert (stats.io_read_bytes, stats.io_write_bytes) == (4097, 8192)
    assert stats.raw["cpu_stats"]["cpu_usage"]["usage_in_usermode"] == 1_000_000
    assert stats.raw["cpu_stats"]["throttling_data"] == {"periods": 3, "throttled_periods": 1, "throttled_time": 7000}
    assert stats.raw["memory_stats"]["stats"]["anon"] == MiB
    assert stats.raw["pids_stats"] == {"current": 1, "limit": None}
    assert {"major": 254, "minor": 0, "op": "write", "value": 8192} in stats.raw["blkio_stats"]["io_service_bytes_recursive"]

    assert not await res.oom_killed("c1")
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert await res.oom_killed("c1")


async def test_freeze_waits_for_the_kernel_to_settle(fake) -> None:
    res = provider(fake)
    await res.create("c1", ResourceLimits())
    fake.settle_freeze = False
    group = fake.root / "shoal" / "c1"
    async with trio.open_nursery() as nursery:

        async def settle_later() -> None:
            await trio.sleep(0.03)
            fake.set_events(group, frozen=1)

        nursery.start_soon(settle_later)
        started = trio.current_time()
        await res.freeze("c1", True)
        assert trio.current_time() - started >= 0.03
    assert read(fake, "shoal/c1/cgroup.freeze") == "1"


async def test_a_freeze_that_never_settles_is_undone(fake, monkeypatch) -> None:
    monkeypatch.setattr(resources_module, "FREEZE_TIMEOUT", 0.05)
    res = provider(fake)
    await res.create("c1", ResourceLimits())
    fake.settle_freeze = False
    with pytest.raises(ShoalError, match="did not freeze"):
        await res.freeze("c1", True)
    assert read(fake, "shoal/c1/cgroup.freeze") == "0"


async def test_remove_waits_for_processes_to_leave(fake, monkeypatch) -> None:
    monkeypatch.setattr(resources_module, "REMOVE_TIMEOUT", 0.05)
    res = provider(fake)
    await res.create("c1", ResourceLimits())
    await res.add_process("c1", 4242)
    with pytest.raises(ShoalError, match="still has processes"):
        await res.remove("c1")
    monkeypatch.setattr(resources_module, "REMOVE_TIMEOUT", 10.0)  # a busy machine must not fail the wait
    async with trio.open_nursery() as nursery:

        async def exit_later() -> None:
            await trio.sleep(0.01)
            (fake.root / "shoal" / "c1" / "cgroup.procs").write_text("")

        nursery.start_soon(exit_later)
        await res.remove("c1")
    assert not (fake.root / "shoal" / "c1").exists()
    await res.remove("c1")  # already gone: not an error
    res.driver.remove_parent()
    assert not (fake.root / "shoal").exists()


async def test_a_live_group_of_that_name_is_a_conflict_and_a_stale_one_is_replaced(fake) -> None:
    res = provider(fake)
    await res.create("c1", ResourceLimits(pids_limit=10))
    await res.add_process("c1", 4242)
    with pytest.raises(Conflict):
        await res.create("c1", ResourceLimits())
    (fake.root / "shoal" / "c1" / "cgroup.procs").write_text("")
    await res.create("c1", ResourceLimits())  # left behind, empty: made afresh
    assert read(fake, "shoal/c1/pids.max") == "max"


async def test_missing_groups(fake) -> None:
    res = provider(fake)
    calls = (res.stats, res.pids, res.oom_killed, lambda n: res.add_process(n, 1), lambda n: res.freeze(n, True))
    for call in calls:
        with pytest.raises(NotFound, match="'nope' does not exist"):
            await call("nope")
