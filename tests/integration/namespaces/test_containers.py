"""Real containers from the namespaces provider: isolation, exit codes, exec, tty, restore."""

from __future__ import annotations

import dataclasses
import os
import signal
import termios
from pathlib import Path

import pytest
import trio

from shoal.plugins.namespaces import DEFAULT_CAPABILITIES
from shoal.plugins.namespaces.errors import ExecError
from shoal.plugins.namespaces.isolation import NamespaceIsolation, NamespaceProcess
from shoal.runtime import Mount, ProcessSpec, RuntimeSpec
from shoal.slots import ContainerProcess, Stdio

pytestmark = pytest.mark.root

MASKED = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/scsi")
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_counter = 0


def make_spec(rootfs: Path, *args: str, **fields: object) -> RuntimeSpec:
    global _counter
    _counter += 1
    process_fields = {k: fields.pop(k) for k in ("user", "cwd", "capabilities", "env", "rlimits") if k in fields}
    process = ProcessSpec(
        args=args,
        env=process_fields.pop("env", ("PATH=/bin",)),
        capabilities=process_fields.pop("capabilities", DEFAULT_CAPABILITIES),
        no_new_privileges=True,
        **process_fields,
    )
    base = dict(id=f"c{os.getpid()}-{_counter}", rootfs=str(rootfs), process=process, hostname="box",
                masked_paths=MASKED, readonly_paths=READONLY)
    base.update(fields)
    return RuntimeSpec(**base)


async def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        await trio.lowlevel.wait_readable(fd)
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the pty's other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def run(iso: NamespaceIsolation, spec: RuntimeSpec) -> tuple[int, str]:
    """Create, start and wait for a container; its exit code and combined output."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        proc = await iso.create(spec, Stdio(stdout=w, stderr=w))
        os.close(w)
        w = -1
        try:
            await proc.start()
            output = await read_all(r)
            code = await proc.wait()
        finally:
            proc.close()
        iso.forget(proc.state())
        return code, output.decode()
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


async def sh(iso: NamespaceIsolation, rootfs: Path, script: str, **fields: object) -> tuple[int, str]:
    return await run(iso, make_spec(rootfs, "sh", "-c", script, **fields))


async def test_pid_one_inside_high_pid_outside(isolation, busybox_rootfs):
    proc = await isolation.create(make_spec(busybox_rootfs, "sh", "-c", "echo $$"), Stdio())
    assert isinstance(proc, ContainerProcess)
    assert proc.pid > 1
    with open(f"/proc/{proc.pid}/status") as f:
        nspid = next(line for line in f if line.startswith("NSpid:")).split()[1:]
    assert nspid == [str(proc.pid), "1"]
    await proc.start()
    assert await proc.wait() == 0
    proc.close()
    code, out = await sh(isolation, busybox_rootfs, "echo $$; ps -o pid,comm > /tmp/ps; cat /tmp/ps; rm /tmp/ps")
    pid1, _header, *rows = out.splitlines()
    assert (code, pid1) == (0, "1")
    assert sorted(row.split()[1] for row in rows) == ["ps", "sh"]  # no host process visible


async def test_hostname_and_network_isolated(isolation, busybox_rootfs):
    code, out = await sh(isolation, busybox_rootfs, "hostname; ls /sys/class/net")
    assert (code, out.split()) == (0, ["box", "lo"])
    assert os.uname().nodename != "box"


async def test_etc_files_bound_without_touching_the_image(isolation, busybox_rootfs):
    spec = make_spec(busybox_rootfs, "sh", "-c", "cat /etc/hostname /etc/hosts",
                     etc_files={"/etc/hostname": "box\n", "/etc/hosts": "127.0.0.1 localhost box\n"})
    assert await run(isolation, spec) == (0, "box\n127.0.0.1 localhost box\n")
    assert (busybox_rootfs / "etc" / "hostname").read_text() == ""  # only the mount point


async def test_proc_sys_readonly_and_masked_paths(isolation, busybox_rootfs):
    script = (
        "exec 2>/dev/null; echo 1 > /proc/sys/kernel/domainname && echo sys-writable;"
        "echo 1 > /proc/sysrq-trigger && echo sysrq-writable;"
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; touch /sys/x 2>/dev/null && echo sys-rw; echo done"
    )
    code, out = await sh(isolation, busybox_rootfs, script)
    assert code == 0
    assert out.split() == ["0", "0", "done"]


async def test_privileged_operations_denied(isolation, busybox_rootfs):
    script = (
        "mount -t tmpfs none /tmp 2>/dev/null && echo mounted;"
        "insmod /nope.ko 2>/dev/null; modprobe dummy 2>/dev/null && echo module;"
        "dd if=/dev/mem of=/dev/null bs=1 count=1 2>/dev/null && echo rawio;"
        "mknod /dev/sda b 8 0 2>/dev/null; head -c1 /dev/sda >/dev/null 2>&1 && echo blockdev;"
        "grep CapEff /proc/self/status"
    )
    code, out = await sh(isolation, busybox_rootfs, script)
    assert code == 0
    assert out.split() == ["CapEff:", "00000000a80425fb"]


async def test_no_escape_through_proc_or_planted_symlinks(isolation, busybox_rootfs, tmp_path):
    import shutil

    rootfs = tmp_path / "evil"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    (rootfs / "etc" / "hosts").unlink(missing_ok=True)
    (rootfs / "etc" / "hosts").symlink_to("/../../../../etc/shadow-target")
    (rootfs / "data").symlink_to("../../../../../../tmp")
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "marker").write_text("volume\n")
    spec = make_spec(rootfs, "sh", "-c", "ls /proc/1/root/ | tr '\\n' ' '; echo; cat /data/marker /etc/hosts",
                     mounts=(Mount("/data", "bind", str(volume), ("rbind", "ro")),),
                     etc_files={"/etc/hosts": "127.0.0.1 localhost\n"})
    code, out = await run(isolation, spec)
    assert code == 0
    listing, marker, hosts = out.splitlines()
    assert "bin" in listing.split() and "usr" not in listing.split()  # the rootfs, not the host
    assert (marker, hosts) == ("volume", "127.0.0.1 localhost")
    # The planted symlinks resolved inside the rootfs: the mount points were made there.
    assert (rootfs / "etc" / "shadow-target").exists()
    assert not Path("/etc/shadow-target").exists()
    assert not (Path("/tmp") / "marker").exists()


async def test_user_cannot_read_root_only_file(isolation, busybox_rootfs):
    code, out = await sh(isolation, busybox_rootfs, "id; cat /root/secret", user="1000")
    assert code == 1
    assert "uid=1000(user) gid=1000(user) groups=1000(user),2000(extra)\n" in out
    assert "top secret" not in out
    code, out = await sh(isolation, busybox_rootfs, "id -u; id -g", user="user:0")
    assert (code, out.split()) == (0, ["1000", "0"])


async def test_capability_add_and_drop(isolation, busybox_rootfs):
    caps = (DEFAULT_CAPABILITIES - {"CAP_CHOWN", "CAP_NET_RAW"}) | {"CAP_SYS_ADMIN"}
    code, out = await sh(isolation, busybox_rootfs, "grep -E 'CapEff|CapBnd' /proc/self/status", capabilities=caps)
    assert code == 0
    expected = 0xA80425FB & ~(1 << 0) & ~(1 << 13) | (1 << 21)
    assert out.split() == ["CapEff:", f"{expected:016x}", "CapBnd:", f"{expected:016x}"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("true",), 0, None),
        (("sh", "-c", "exit 3"), 3, None),
        (("nope",), 127, 'exec: "nope": executable file not found in $PATH'),
        (("/etc/passwd",), 126, 'exec: "/etc/passwd": permission denied'),
    ],
)
async def test_exit_codes(isolation, busybox_rootfs, args, code, message):
    proc = await isolation.create(make_spec(busybox_rootfs, *args), Stdio())
    try:
        if message is None:
            await proc.start()
        else:
            with pytest.raises(ExecError) as info:
                await proc.start()
            assert str(info.value) == message
            assert info.value.exit_code == code
        assert await proc.wait() == code
    finally:
        proc.close()


async def test_sigkill_gives_137_and_init_forwards(isolation, busybox_rootfs):
    proc = await isolation.create(make_spec(busybox_rootfs, "sleep", "60"), Stdio())
    await proc.start()
    proc.kill(signal.SIGKILL)
    assert await proc.wait() == 137
    proc.kill(signal.SIGKILL)  # already gone: not an error
    proc.close()
    # With --init, PID 1 forwards SIGTERM to the program, which dies of it: 128 + 15.
    code_spec = make_spec(busybox_rootfs, "sh", "-c", "sleep 1 & sleep 60", init=True)
    proc = await isolation.create(code_spec, Stdio())
    await proc.start()
    await trio.sleep(0.1)
    proc.kill(signal.SIGTERM)
    with trio.fail_after(5):
        assert await proc.wait() == 143
    proc.close()


async def test_exec_joins_the_container(isolation, busybox_rootfs):
    proc = await isolation.create(make_spec(busybox_rootfs, "sleep", "60"), Stdio())
    await proc.start()
    try:
        r, w = os.pipe()
        os.set_blocking(r, False)
        exe = await isolation.exec(proc, ProcessSpec(args=("sh", "-c", "ps -o pid,comm; hostname; id -u"),
                                                      env=("PATH=/bin",), user="1000",
                                                      capabilities=DEFAULT_CAPABILITIES), Stdio(stdout=w))
        os.close(w)
        out = (await read_all(r)).decode()
        os.close(r)
        assert await exe.wait() == 0
        exe.close()
        lines = out.split("\n")
        assert lines[1].split() == ["1", "sleep"]
        assert "box" in lines and "1000" in lines
        with pytest.raises(ExecError) as info:
            await isolation.exec(proc, ProcessSpec(args=("nope",), env=("PATH=/bin",)), Stdio())
        assert info.value.exit_code == 127
    finally:
        proc.kill(signal.SIGKILL)
        await proc.wait()
        proc.close()


async def test_tty(isolation, busybox_rootfs):
    spec = make_spec(busybox_rootfs, "sh", "-c", "tty; test -t 0 && echo isatty; stty size; echo hi > /dev/console")
    proc = await isolation.create(spec, Stdio(terminal=True))
    assert proc.pty_master is not None
    import fcntl
    import struct

    fcntl.ioctl(proc.pty_master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    os.set_blocking(proc.pty_master, False)
    await proc.start()
    out = (await read_all(proc.pty_master)).decode().split()
    assert await proc.wait() == 0
    proc.close()
    assert out == ["/dev/pts/0", "isatty", "40", "100", "hi"]


async def test_restore_after_daemon_restart(tmp_path, busybox_rootfs):
    state_root = tmp_path / "state"
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    async with NamespaceIsolation(state_root) as first:
        proc = await first.create(make_spec(busybox_rootfs, "sh", "-c", "read x; echo out-$x; exit 7"),
                                  Stdio(stdin=stdin_r, stdout=out_w))
        os.close(stdin_r)
        os.close(out_w)
        await proc.start()
        state = proc.state()
        proc.close()
    # The daemon "dies": its provider and read end of stdout are gone; the container and
    # the monitor live on, and its output pipe stays open through the monitor.
    os.close(out_r)
    async with NamespaceIsolation(state_root) as second:
        again = await second.restore(state)
        assert isinstance(again, NamespaceProcess)
        held = again.take_stdio()
        assert set(held) == {"stdout"}
        os.write(stdin_w, b"ok\n")
        os.close(stdin_w)
        assert await again.wait() == 7
        assert os.read(held["stdout"], 100) == b"out-ok\n"
        os.close(held["stdout"])
        again.close()
        assert await second.restore(state) is None
        assert await second.recorded_exit(state) == 7
        second.forget(state)
    assert not any(state_root.iterdir())


async def test_failed_create_leaves_nothing(isolation, busybox_rootfs, tmp_path):
    spec = make_spec(busybox_rootfs, "true", mounts=(Mount("/data", "bind", str(tmp_path / "missing")),))
    with pytest.raises(Exception, match="bind source path does not exist"):
        await isolation.create(spec, Stdio())
    assert not (isolation.state_root / spec.id).exists()
    with open("/proc/self/mountinfo") as f:
        assert str(busybox_rootfs) not in f.read()


async def test_read_only_rootfs_tmpfs_and_limits(isolation, busybox_rootfs):
    spec = dataclasses.replace(
        make_spec(busybox_rootfs, "sh", "-c", "touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs-ok; ulimit -n; pwd",
                  cwd="/scratch", rlimits=(("RLIMIT_NOFILE", 123, 123),)),
        readonly_rootfs=True,
        mounts=(Mount("/scratch", "tmpfs", "tmpfs", ("size=1m", "mode=1777")),),
    )
    assert (await run(isolation, spec)) == (0, "ro\ntmpfs-ok\n123\n/scratch\n")



async def test_new_user_namespace_with_new_pid_namespace(isolation, busybox_rootfs, request):
    import shutil
    import tempfile

    from shoal.runtime import IdMapping

    # The container's root is host uid 100000: the rootfs must belong to it, and every
    # directory above it must let it through (pytest's temporary directories do not).
    rootfs = Path(tempfile.mkdtemp(prefix="shoal-userns-")) / "rootfs"
    rootfs.parent.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(rootfs.parent))
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    for path in [rootfs, *rootfs.rglob("*")]:
        os.lchown(path, 100000, 100000)
    namespaces = {k: None for k in ("pid", "mount", "uts", "ipc", "net", "user", "cgroup")}
    mapping = (IdMapping(0, 100000, 65536),)
    spec = make_spec(rootfs, "sh", "-c", "echo $$; cat /proc/self/uid_map; ls /proc | grep -c '^[0-9]'",
                     namespaces=namespaces, uid_mappings=mapping, gid_mappings=mapping)
    proc = await isolation.create(spec, Stdio())
    with open(f"/proc/{proc.pid}/status") as f:
        status = {line.split(":")[0]: line.split()[1:] for line in f}
    assert status["NSpid"] == [str(proc.pid), "1"]
    assert status["Uid"][0] == "100000"
    proc.close()
    isolation.forget(proc.state())
    spec = dataclasses.replace(spec, id=spec.id + "-run")
    code, out = await run(isolation, spec)
    pid1, uid_map, processes = out.split("\n", 2)
    assert (code, pid1, uid_map.split(), processes.strip()) == (0, "1", ["0", "100000", "65536"], "3")


async def test_monitor_outlives_the_daemon_and_keeps_exit_codes(tmp_path, busybox_rootfs):
    state_root = tmp_path / "state"
    async with NamespaceIsolation(state_root) as first:
        monitor = first.monitor_pid
        quick = await first.create(make_spec(busybox_rootfs, "sh", "-c", "sleep 0.2; exit 5"), Stdio())
        slow = await first.create(make_spec(busybox_rootfs, "sleep", "60"), Stdio())
        for proc in (quick, slow):
            await proc.start()
        states = [quick.state(), slow.state()]
        for proc in (quick, slow):
            proc.close()
    await trio.sleep(0.4)  # "quick" ends while no daemon is connected
    assert (state_root / "monitor.sock").exists()
    async with NamespaceIsolation(state_root) as second:
        assert second.monitor_pid == monitor  # reconnected, not restarted
        assert await second.restore(states[0]) is None
        assert await second.recorded_exit(states[0]) == 5
        again = await second.restore(states[1])
        assert again is not None and again.take_stdio() == {}
        again.kill(signal.SIGKILL)
        assert await again.wait() == 137
        again.close()
        for state in states:
            second.forget(state)
    # No process left and no daemon: the monitor is gone, and so is its socket.
    try:
        with open(f"/proc/{monitor}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # ended, not yet reaped by init
    except FileNotFoundError:
        pass
    assert not any(state_root.iterdir())


async def test_terminals_held_across_a_restart(tmp_path, busybox_rootfs):
    state_root = tmp_path / "state"
    async with NamespaceIsolation(state_root) as first:
        proc = await first.create(make_spec(busybox_rootfs, "sh", "-c", "read x; echo got-$x; sleep 60"),
                                  Stdio(terminal=True))
        await proc.start()
        exe = await first.exec(proc, ProcessSpec(args=("sh", "-c", "read y; echo exec-$y"), env=("PATH=/bin",),
                                                 capabilities=DEFAULT_CAPABILITIES), Stdio(terminal=True))
        states = [proc.state(), exe.state()]
        proc.close()  # closes our pty masters: only the monitor holds them now
        exe.close()
    async with NamespaceIsolation(state_root) as second:
        outputs = []
        restored = [await second.restore(state) for state in states]
        for again, line in zip(restored, (b"a\n", b"b\n")):
            held = again.take_stdio()
            assert set(held) == {"pty"}
            os.write(held["pty"], line)
            os.set_blocking(held["pty"], False)
            with trio.fail_after(5):
                out = b""
                while b"-" not in out or not out.endswith(b"\r\n"):
                    await trio.lowlevel.wait_readable(held["pty"])
                    out += os.read(held["pty"], 100)
            outputs.append(out.split(b"\r\n")[-2])
            os.close(held["pty"])
        for again in reversed(restored):
            again.kill(signal.SIGKILL)
            await again.wait()
            again.close()
        assert outputs == [b"got-a", b"exec-b"]
        second.forget(states[0])


async def test_init_is_small_and_reaps_orphans(isolation, busybox_rootfs):
    script = "(sleep 0.1 &); sleep 0.4; ps -o stat,comm | grep -c '^Z'; tr '\\0' ' ' < /proc/1/cmdline"
    code, out = await sh(isolation, busybox_rootfs, script, init=True)
    zombies, cmdline = out.split("\n")[:2]
    assert (code, zombies) == (0, "0")
    if isolation._init_fd is not None:  # built with the host's C compiler
        assert cmdline.split()[0] == "init"
        proc = await isolation.create(make_spec(busybox_rootfs, "sleep", "60", init=True), Stdio())
        await proc.start()
        with open(f"/proc/{proc.pid}/smaps_rollup") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("Rss:"))
        assert rss < 1024  # KiB; a Python PID 1 takes over 10 MiB
        proc.kill(signal.SIGTERM)
        assert await proc.wait() == 143
        proc.close()
