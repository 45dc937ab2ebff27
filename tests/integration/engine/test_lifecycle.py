"""The container engine end to end on real namespaces, cgroups and overlayfs."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from shoal.errors import Conflict, InvalidArgument, NotFound, NotModified

pytestmark = pytest.mark.root

IMAGE = "busybox:test"


async def run(containers, cmd, **body):
    """create + start + wait, like `docker run` without attaching: (id, exit code)."""
    created = await containers.create({"Image": IMAGE, "Cmd": cmd, **body})
    cid = created["Id"]
    waiter = containers.wait(cid, "next-exit")
    await containers.start(cid)
    with trio.fail_after(20):
        result = await waiter
    return cid, result["StatusCode"]


async def output(containers, cid, **kw) -> str:
    return b"".join([data async for _, data in containers.logs(cid, **kw)]).decode()


async def test_run_echo_logs_and_inspect(containers) -> None:
    cid, code = await run(containers, ["sh", "-c", "echo hi; echo oops >&2; exit 3"])
    assert code == 3
    assert await output(containers, cid, stderr=False) == "hi\n"
    assert await output(containers, cid, stdout=False) == "oops\n"
    info = await containers.inspect(cid)
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 3
    assert info["Config"]["Cmd"] == ["sh", "-c", "echo hi; echo oops >&2; exit 3"]
    assert info["Path"] == "sh" and info["Name"].startswith("/")
    assert Path(info["LogPath"]).exists()


async def test_pid_1_hostname_and_isolation(containers) -> None:
    cid, code = await run(containers, ["sh", "-c", "echo $$; hostname; ls /proc | grep -c '^[0-9]'; ip link | grep -c mtu"],
                          Hostname="box", HostConfig={"NetworkMode": "none"})  # fmt: skip
    assert code == 0
    pid, hostname, procs, links = (await output(containers, cid)).split()
    assert (pid, hostname, links) == ("1", "box", "1")
    assert int(procs) <= 3  # sh, ls and grep at most: no host processes


async def test_command_errors_give_docker_exit_codes(containers) -> None:
    created = await containers.create({"Image": IMAGE, "Cmd": ["nope"]})
    with pytest.raises(InvalidArgument, match='executable file not found in \\$PATH') as info:
        await containers.start(created["Id"])
    assert info.value.exit_code == 127
    assert (await containers.inspect(created["Id"]))["State"]["ExitCode"] == 127
    created = await containers.create({"Image": IMAGE, "Cmd": ["/etc/passwd"]})
    with pytest.raises(InvalidArgument, match="permission denied") as info:
        await containers.start(created["Id"])
    assert info.value.exit_code == 126


async def test_stop_uses_the_signal_then_sigkill(containers) -> None:
    trap = await containers.create({"Image": IMAGE, "Cmd": ["sh", "-c", "trap 'exit 0' TERM; sleep 100 & wait"]})
    await containers.start(trap["Id"])
    await trio.sleep(0.2)
    with trio.fail_after(10):
        await containers.stop(trap["Id"], timeout=5)
    assert (await containers.inspect(trap["Id"]))["State"]["ExitCode"] == 0
    stubborn = await containers.create({"Image": IMAGE, "Cmd": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]})
    await containers.start(stubborn["Id"])
    await trio.sleep(0.2)
    with trio.fail_after(10):
        await containers.stop(stubborn["Id"], timeout=1)
    assert (await containers.inspect(stubborn["Id"]))["State"]["ExitCode"] == 137
    with pytest.raises(NotModified):
        await containers.stop(stubborn["Id"])


async def test_kill_pause_unpause(containers) -> None:
    created = await containers.create({"Image": IMAGE, "Cmd": ["sleep", "100"]})
    cid = created["Id"]
    await containers.start(cid)
    await containers.pause(cid)
    assert (await containers.inspect(cid))["State"]["Status"] == "paused"
    with pytest.raises(Conflict, match="already paused"):
        await containers.pause(cid)
    await containers.unpause(cid)
    assert (await containers.inspect(cid))["State"]["Status"] == "running"
    await containers.remove(cid, force=True)
    # PID 1 gets only signals it handles, as on Docker.
    created = await containers.create({"Image": IMAGE, "Cmd": ["sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.1; done"]})
    cid = created["Id"]
    await containers.start(cid)
    await trio.sleep(0.3)
    waiter = containers.wait(cid)
    await containers.kill(cid, "USR1")
    with trio.fail_after(10):
        assert (await waiter)["StatusCode"] == 42
    with pytest.raises(Conflict, match="is not running"):
        await containers.kill(cid)


async def test_exec_runs_in_the_container(containers) -> None:
    created = await containers.create({"Image": IMAGE, "Cmd": ["sleep", "100"], "Hostname": "execbox"})
    cid = created["Id"]
    await containers.start(cid)
    exec_id = await containers.exec_create(cid, {"Cmd": ["sh", "-c", "hostname; echo err >&2; exit 5"],
                                                 "AttachStdout": True, "AttachStderr": True})  # fmt: skip
    attachment = await containers.exec_start(exec_id)
    chunks = []
    with trio.fail_after(10):
        while (item := await attachment.read()) is not None:
            chunks.append(item)
        while (await containers.exec_inspect(exec_id))["Running"]:
            await trio.sleep(0.01)
    assert b"".join(d for s, d in chunks if s == 1) == b"execbox\n"
    assert b"".join(d for s, d in chunks if s == 2) == b"err\n"
    assert (await containers.exec_inspect(exec_id))["ExitCode"] == 5
    await containers.remove(cid, force=True)


async def test_attach_stdin_before_start(containers) -> None:
    created = await containers.create({"Image": IMAGE, "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": True,
                                       "AttachStdin": True, "AttachStdout": True})  # fmt: skip
    cid = created["Id"]
    attachment = await containers.attach(cid, stdin=True, stdout=True, stderr=True)
    waiter = containers.wait(cid, "next-exit")
    await containers.start(cid)
    await attachment.write(b"hello through stdin\n")
    await attachment.close_stdin()
    with trio.fail_after(10):
        got = b""
        while (item := await attachment.read()) is not None:
            got += item[1]
        assert (await waiter)["StatusCode"] == 0
    assert got == b"hello through stdin\n"


async def test_restart_policy_and_auto_remove(containers) -> None:
    created = await containers.create({"Image": IMAGE, "Cmd": ["sh", "-c", "exit 1"],
                                       "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}})  # fmt: skip
    cid = created["Id"]
    await containers.start(cid)
    with trio.fail_after(20):
        while True:
            info = await containers.inspect(cid)
            if info["RestartCount"] == 2 and info["State"]["Status"] == "exited":
                break
            await trio.sleep(0.05)
    created = await containers.create({"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"AutoRemove": True}})
    waiter = containers.wait(created["Id"], "removed")
    await containers.start(created["Id"])
    with trio.fail_after(10):
        assert (await waiter)["StatusCode"] == 0
    with pytest.raises(NotFound):
        await containers.inspect(created["Id"])


async def test_follow_logs_timestamps_tail(containers) -> None:
    created = await containers.create({"Image": IMAGE, "Cmd": ["sh", "-c", "for i in 1 2 3 4; do echo line$i; sleep 0.1; done"]})
    cid = created["Id"]
    await containers.start(cid)
    with trio.fail_after(10):
        lines = [data async for _, data in containers.logs(cid, follow=True)]
    assert lines == [b"line1\n", b"line2\n", b"line3\n", b"line4\n"]
    assert await output(containers, cid, tail=2) == "line3\nline4\n"
    stamped = await output(containers, cid, timestamps=True, tail=1)
    assert stamped.endswith("Z line4\n") and stamped[:4].isdigit()


async def test_names_rename_list_and_filters(containers) -> None:
    a = await containers.create({"Image": IMAGE, "Cmd": ["true"], "Labels": {"tier": "web"}}, name="alpha")
    with pytest.raises(Conflict, match='The container name "/alpha" is already in use'):
        await containers.create({"Image": IMAGE, "Cmd": ["true"]}, name="alpha")
    await containers.rename("alpha", "beta")
    assert (await containers.inspect("beta"))["Id"] == a["Id"]
    with pytest.raises(NotFound):
        await containers.inspect("alpha")
    assert await containers.list() == []
    listed = await containers.list(all=True, filters={"label": ["tier=web"]})
    assert [c["Names"] for c in listed] == [["/beta"]]
    assert listed[0]["State"] == "created" and listed[0]["Status"] == "Created"
    assert (await containers.inspect(a["Id"][:10]))["Name"] == "/beta"


async def test_bad_input_leaves_nothing_behind(containers, harness) -> None:
    engine_dir = harness.data / "plugins" / "engine" / "containers"
    before = sorted(engine_dir.iterdir()) if engine_dir.exists() else []
    with pytest.raises(NotFound, match="nosuch"):
        await containers.create({"Image": "nosuch:image", "Cmd": ["true"]})
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_FLY"'):
        await containers.create({"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"CapAdd": ["CAP_FLY"]}})
    with pytest.raises(InvalidArgument, match="bind source path does not exist: /no/such/dir"):
        await containers.create({"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"Binds": ["/no/such/dir:/data"]}})
    with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
        await containers.create({"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"Memory": 1024}})
    with pytest.raises(InvalidArgument, match="Config.Image"):
        await containers.create({"Cmd": ["true"]})
    assert (sorted(engine_dir.iterdir()) if engine_dir.exists() else []) == before
    assert await containers.list(all=True) == []
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(harness.data) not in mounts


async def test_remove_cleans_mounts_cgroups_and_state(containers, harness) -> None:
    created = await containers.create({"Image": IMAGE, "Cmd": ["sleep", "100"]})
    cid = created["Id"]
    await containers.start(cid)
    group = Path(f"/sys/fs/cgroup/memory/{harness.cgroup_parent}/{cid}")
    pid = (await containers.inspect(cid))["State"]["Pid"]
    assert str(pid) in (group / "cgroup.procs").read_text().split()  # placed before it ran
    with pytest.raises(Conflict, match="container is running"):
        await containers.remove(cid)
    await containers.remove(cid, force=True)
    assert not Path(f"/sys/fs/cgroup/memory/{harness.cgroup_parent}/{cid}").exists()
    assert cid not in Path("/proc/self/mountinfo").read_text()
    assert not list((harness.data / "run").rglob(cid))
    with pytest.raises(NotFound):
        await containers.inspect(cid)


async def test_memory_limit_oom_kills_only_the_container(containers) -> None:
    cid, code = await run(containers, ["sh", "-c", "x=aaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done"],
                          HostConfig={"Memory": 16 * 1024 * 1024, "MemorySwap": 16 * 1024 * 1024})  # fmt: skip
    info = await containers.inspect(cid)
    assert code == 137 and info["State"]["OOMKilled"] is True


async def test_pids_limit_stops_a_fork_bomb(containers) -> None:
    # Each successful fork prints its count; the shell dies at the first refused fork.
    cid, code = await run(containers, ["sh", "-c", "n=0; for i in $(seq 40); do sleep 30 & n=$((n+1)); echo $n; done"],
                          HostConfig={"PidsLimit": 10})  # fmt: skip
    started = (await output(containers, cid, stderr=False)).split()
    assert "can't fork" in await output(containers, cid, stdout=False)
    assert code != 0 and started[-1] == "9"  # the shell itself is the tenth process


async def test_live_restore_keeps_containers_and_exit_codes(harness) -> None:
    async with harness.open() as engine:
        containers = engine.slot("containers")
        long = await containers.create({"Image": IMAGE, "Cmd": ["sh", "-c", "echo before; sleep 1; echo after; exit 7"]}, name="long")
        short = await containers.create({"Image": IMAGE, "Cmd": ["sh", "-c", "sleep 0.3; exit 9"]}, name="short")
        await containers.start(long["Id"])
        await containers.start(short["Id"])
        await trio.sleep(0.2)
        pid = (await containers.inspect("long"))["State"]["Pid"]
    # The engine is gone; the containers are not.
    assert Path(f"/proc/{pid}").exists()
    await trio.sleep(0.5)  # "short" exits while no daemon runs
    async with harness.open() as engine:
        containers = engine.slot("containers")
        assert (await containers.inspect("short"))["State"]["ExitCode"] == 9
        info = await containers.inspect("long")
        assert info["State"]["Running"] and info["State"]["Pid"] == pid
        with trio.fail_after(10):
            assert (await containers.wait("long"))["StatusCode"] == 7
        logs = b"".join([d async for _, d in containers.logs("long")])
        assert logs == b"before\nafter\n"
