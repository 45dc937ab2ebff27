"""Limits, users, volumes and restart policies through the engine, on real kernel features."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

pytestmark = pytest.mark.root

IMAGE = "busybox:test"


async def run(containers, cmd, **body):
    """Run to the end: (id, exit code, stdout then stderr). The two streams are pumped
    separately, so their interleaving is not kept; each keeps its own order."""
    created = await containers.create({"Image": IMAGE, "Cmd": cmd, **body})
    waiter = containers.wait(created["Id"], "next-exit")
    await containers.start(created["Id"])
    with trio.fail_after(20):
        code = (await waiter)["StatusCode"]
    out = b"".join([d async for _, d in containers.logs(created["Id"], stderr=False)])
    err = b"".join([d async for _, d in containers.logs(created["Id"], stdout=False)])
    return created["Id"], code, (out + err).decode()


async def test_cpu_quota_holds_within_ten_percent(containers) -> None:
    created = await containers.create({"Image": IMAGE, "Cmd": ["sh", "-c", "while true; do :; done"],
                                       "HostConfig": {"NanoCpus": 500_000_000}})  # fmt: skip
    cid = created["Id"]
    await containers.start(cid)
    await trio.sleep(0.5)
    first = await containers.stats(cid)
    start = trio.current_time()
    await trio.sleep(2.0)
    second = await containers.stats(cid)
    elapsed = trio.current_time() - start
    used = (second["cpu_stats"]["cpu_usage"]["total_usage"] - first["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9
    share = used / elapsed
    await containers.remove(cid, force=True)
    assert 0.3 < share <= 0.55, f"a 0.5-CPU container used {share:.2f} CPUs"


async def test_user_1000_cannot_read_root_only_files(containers) -> None:
    _, code, out = await run(containers, ["sh", "-c", "id -u; cat /root/secret"], User="1000")
    assert code == 1 and out.startswith("1000\n") and "Permission denied" in out
    _, code, out = await run(containers, ["cat", "/root/secret"])
    assert (code, out) == (0, "top secret\n")


async def test_readonly_rootfs_tmpfs_and_proc_sys(containers) -> None:
    _, code, out = await run(containers, ["sh", "-c", "touch /x 2>&1; touch /scratch/y && echo tmpfs-ok; "
                                          "echo 1 > /proc/sys/kernel/hostname 2>&1; mount -t tmpfs t /tmp 2>&1; echo end"],
                             HostConfig={"ReadonlyRootfs": True, "Tmpfs": {"/scratch": "size=1m"}})  # fmt: skip
    assert "touch: /x: Read-only file system" in out
    assert "tmpfs-ok" in out
    assert "can't create /proc/sys/kernel/hostname: Read-only file system" in out
    assert "mount: permission denied (are you root?)" in out  # no CAP_SYS_ADMIN


async def test_bind_mounts_and_named_volumes(containers, tmp_path: Path) -> None:
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("hello\n")
    _, code, out = await run(containers, ["sh", "-c", "cat /data/from-host; echo x > /data/from-box; echo kept > /vol/file; "
                                          "echo nope > /ro/f 2>&1 || true"],
                             HostConfig={"Binds": [f"{host_dir}:/data", "named-vol:/vol", f"{host_dir}:/ro:ro"]})  # fmt: skip
    assert code == 0 and out.startswith("hello\n") and "Read-only file system" in out
    assert (host_dir / "from-box").read_text() == "x\n"
    _, code, out = await run(containers, ["cat", "/vol/file"], HostConfig={"Binds": ["named-vol:/vol"]})
    assert (code, out) == (0, "kept\n")


async def test_restart_policies_across_an_engine_restart(harness) -> None:
    async with harness.open() as engine:
        containers = engine.slot("containers")
        forever = "trap 'exit 0' TERM; sleep 100 & wait"
        for name, policy in (("always-box", "always"), ("unless-box", "unless-stopped"), ("plain-box", "no")):
            created = await containers.create({"Image": IMAGE, "Cmd": ["sh", "-c", forever],
                                               "HostConfig": {"RestartPolicy": {"Name": policy}}}, name=name)  # fmt: skip
            await containers.start(created["Id"])
        for name in ("always-box", "unless-box", "plain-box"):
            await containers.stop(name, timeout=5)
    async with harness.open() as engine:
        containers = engine.slot("containers")
        with trio.fail_after(10):
            while not (await containers.inspect("always-box"))["State"]["Running"]:
                await trio.sleep(0.05)
        assert (await containers.inspect("unless-box"))["State"]["Status"] == "exited"
        assert (await containers.inspect("plain-box"))["State"]["Status"] == "exited"

