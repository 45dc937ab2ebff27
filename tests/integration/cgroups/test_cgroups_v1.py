"""The v1 driver on this host's real cgroup v1 hierarchies (needs root)."""

from __future__ import annotations

import os
import sys

import pytest
import trio

from shoal.errors import InvalidArgument, ShoalError
from shoal.plugins.cgroups import resources as resources_module
from shoal.plugins.cgroups.limits import format_cpuset, parse_cpuset
from shoal.runtime import ResourceLimits

pytestmark = pytest.mark.root

MiB = 1024 * 1024


def state_letter(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith("State:"))


async def wait_for_state(pid: int, letters: str) -> str:
    with trio.move_on_after(2):
        while state_letter(pid) not in letters:
            await trio.sleep(0.005)
    return state_letter(pid)


async def test_limits_are_written_and_read_back(v1) -> None:
    cpuset_root = v1.driver.mounts["cpuset"]
    with open(os.path.join(cpuset_root, "cpuset.effective_cpus")) as f:
        host_cpus = parse_cpuset("cpus", f.read())
    last_cpu = format_cpuset(frozenset({max(host_cpus)}))
    res = v1.resources
    await res.create(
        "c1",
        ResourceLimits(
            memory=64 * MiB,
            memory_swap=128 * MiB,
            memory_reservation=32 * MiB,
            cpu_shares=512,
            cpu_quota=50000,
            cpu_period=100000,
            cpuset_cpus=last_cpu,
            pids_limit=20,
        ),
    )
    assert v1.read("memory", "c1", "memory.limit_in_bytes") == str(64 * MiB)
    assert v1.read("memory", "c1", "memory.memsw.limit_in_bytes") == str(128 * MiB)
    assert v1.read("memory", "c1", "memory.soft_limit_in_bytes") == str(32 * MiB)
    assert v1.read("cpu", "c1", "cpu.shares") == "512"
    assert v1.read("cpu", "c1", "cpu.cfs_quota_us") == "50000"
    assert v1.read("cpu", "c1", "cpu.cfs_period_us") == "100000"
    assert v1.read("cpuset", "c1", "cpuset.cpus") == last_cpu
    with open(os.path.join(cpuset_root, "cpuset.mems")) as f:
        assert v1.read("cpuset", "c1", "cpuset.mems") == f.read().strip()
    assert v1.read("pids", "c1", "pids.max") == "20"
    allowed = v1.read("devices", "c1", "devices.list").splitlines()
    assert "c 1:3 rwm" in allowed and "c 136:* rwm" in allowed and "a *:* rwm" not in allowed

    # Growing memory+swap past the old total, then shrinking both, in the order the kernel needs.
    await res.update("c1", ResourceLimits(memory=256 * MiB, memory_swap=512 * MiB, cpu_quota=-1))
    assert v1.read("memory", "c1", "memory.limit_in_bytes") == str(256 * MiB)
    assert v1.read("memory", "c1", "memory.memsw.limit_in_bytes") == str(512 * MiB)
    assert v1.read("cpu", "c1", "cpu.cfs_quota_us") == "-1"
    await res.update("c1", ResourceLimits(memory=32 * MiB, memory_swap=48 * MiB, pids_limit=-1))
    assert v1.read("memory", "c1", "memory.limit_in_bytes") == str(32 * MiB)
    assert v1.read("memory", "c1", "memory.memsw.limit_in_bytes") == str(48 * MiB)
    assert v1.read("pids", "c1", "pids.max") == "max"


async def test_a_process_added_is_listed_and_frozen_then_thawed(v1) -> None:
    res = v1.resources
    await res.create("c1", ResourceLimits())
    sleeper = v1.spawn("sleep", "30")
    await res.add_process("c1", sleeper.pid)
    assert await res.pids("c1") == [sleeper.pid]
    with open(f"/proc/{sleeper.pid}/cgroup") as f:
        assert f"memory:/{v1.parent}/c1\n" in f.read()

    await res.freeze("c1", True)
    assert v1.read("freezer", "c1", "freezer.state") == "FROZEN"
    assert state_letter(sleeper.pid) == "D"  # frozen tasks sit in the refrigerator, uninterruptible
    await res.freeze("c1", False)
    assert v1.read("freezer", "c1", "freezer.state") == "THAWED"
    assert await wait_for_state(sleeper.pid, "S") == "S"
    assert sleeper.poll() is None


async def test_a_memory_limit_oom_kills_only_the_group(v1) -> None:
    res = v1.resources
    await res.create("c1", ResourceLimits(memory=32 * MiB, memory_swap=32 * MiB))
    hog = v1.spawn(sys.executable, "-S", "-c", "import sys; sys.stdin.readline(); x = bytearray(b'x') * (256 << 20)")
    await res.add_process("c1", hog.pid)
    assert not await res.oom_killed("c1")
    hog.communicate(b"go\n", timeout=10)
    assert hog.returncode == -9
    assert await res.oom_killed("c1")
    assert os.path.exists(f"/proc/{os.getpid()}")  # the test process itself carries on


async def test_a_pids_limit_stops_a_fork_loop(v1) -> None:
    res = v1.resources
    await res.create("c1", ResourceLimits(pids_limit=6))
    forker = v1.spawn(
        sys.executable,
        "-S",
        "-c",
        "import os, sys, time\n"
        "sys.stdin.readline()\n"
        "refused = 0\n"
        "for _ in range(12):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "    except BlockingIOError:\n"
        "        refused += 1\n"
        "print(refused, flush=True)\n"
        "sys.stdin.readline()\n",
    )
    await res.add_process("c1", forker.pid)
    assert forker.stdin is not None and forker.stdout is not None
    forker.stdin.write(b"go\n")
    forker.stdin.flush()
    assert forker.stdout.readline() == b"7\n"  # the forker and 5 children fill the 6 slots
    stats = await res.stats("c1")
    assert stats.pids == 6 and len(await res.pids("c1")) == 6
    assert v1.read("pids", "c1", "pids.events") == "max 7"


async def test_stats_move_when_work_happens(v1) -> None:
    res = v1.resources
    await res.create("c1", ResourceLimits(memory=256 * MiB))
    worker = v1.spawn(
        sys.executable,
        "-S",
        "-c",
        "import sys, time\n"
        "sys.stdin.readline()\n"
        "x = bytearray(b'x') * (32 << 20)\n"
        "end = time.monotonic() + 0.1\n"
        "while time.monotonic() < end: pass\n"
        "print('ok', flush=True)\n"
        "sys.stdin.readline()\n",
    )
    before = await res.stats("c1")
    assert (before.memory_usage, before.cpu_usage_ns, before.pids) == (0, 0, 0)
    await res.add_process("c1", worker.pid)
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(b"go\n")
    worker.stdin.flush()
    assert worker.stdout.readline() == b"ok\n"
    after = await res.stats("c1")
    assert after.memory_usage >= 32 * MiB and after.memory_limit == 256 * MiB
    assert after.cpu_usage_ns >= 50_000_000
    assert after.pids == 1
    assert after.raw["memory_stats"]["stats"]["rss"] >= 32 * MiB
    assert sum(after.raw["cpu_stats"]["cpu_usage"]["percpu_usage"]) == after.cpu_usage_ns
    assert after.raw["pids_stats"] == {"current": 1, "limit": None}


async def test_remove_waits_for_the_group_to_empty_and_leaves_nothing(v1, monkeypatch) -> None:
    monkeypatch.setattr(resources_module, "REMOVE_TIMEOUT", 0.1)
    res = v1.resources
    await res.create("c1", ResourceLimits(memory=64 * MiB))
    sleeper = v1.spawn("sleep", "30")
    await res.add_process("c1", sleeper.pid)
    with pytest.raises(ShoalError, match="still has processes"):
        await res.remove("c1")
    sleeper.kill()
    sleeper.wait()
    await res.remove("c1")
    assert not any(os.path.exists(d) for d in v1.driver.group_dirs("c1"))
    await res.remove("c1")


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (ResourceLimits(memory=MiB), "memory"),
        (ResourceLimits(cpuset_cpus="0-1023"), "cpuset_cpus"),
        (ResourceLimits(memory_swap=64 * MiB), "memory_swap"),
        (ResourceLimits(pids_limit=10**12), "pids_limit"),  # refused by the kernel, after mkdir
    ],
)
async def test_bad_limits_raise_and_leave_no_group(v1, limits: ResourceLimits, field: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"^{field}: "):
        await v1.resources.create("c1", limits)
    assert not any(os.path.exists(d) for d in v1.driver.group_dirs("c1"))


async def test_blkio_weight_is_applied_or_refused_by_name(v1) -> None:
    try:
        await v1.resources.create("c1", ResourceLimits(blkio_weight=300))
    except InvalidArgument as e:  # a host whose I/O schedulers have no weight at all
        assert str(e).startswith("blkio_weight: ")
        assert not any(os.path.exists(d) for d in v1.driver.group_dirs("c1"))
        return
    files = [v1.file("blkio", "c1", f) for f in ("blkio.weight", "blkio.bfq.weight")]
    assert any(f.exists() and f.read_text().split()[-1] == "300" for f in files)
