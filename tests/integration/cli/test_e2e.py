"""``shoal`` end to end against a real shoald running real containers (as root)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from shoal.presets import resolve_config_path
from shoaltest import run_daemon

pytestmark = pytest.mark.root
ENGINE_PLUGINS = ["namespaces", "cgroups", "overlay", "images", "local-volumes", "engine", "engine-api"]
IMAGE = "clitest:1"


def _shoal(host: str, *argv: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shoal.cli", "-H", host, *argv], input=input, capture_output=True,
                          timeout=30)  # fmt: skip


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("cli-e2e")
    config = tmp / "engine.toml"
    preset = resolve_config_path("default")
    config.write_text(f'version = 1\nextend = "{preset}"\n[load]\nenable = {json.dumps(ENGINE_PLUGINS)}\n')
    rootfs = tmp / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", rootfs / "bin" / "busybox")
    for tool in ("sh", "echo", "cat", "sleep", "id", "hostname"):
        os.symlink("busybox", rootfs / "bin" / tool)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    with run_daemon(config, tmp) as daemon:
        daemon.wait_ready()
        address = f"unix://{tmp / 'run' / 'shoal.sock'}"
        imported = _shoal(address, "import", str(rootfs), IMAGE)
        assert imported.returncode == 0, imported.stderr
        yield address
        leftovers = _shoal(address, "ps", "-aq").stdout.split()
        if leftovers:
            _shoal(address, "rm", "-f", *(c.decode() for c in leftovers))
        assert not leftovers, "a test left containers behind"


def test_images_lists_the_import(host: str) -> None:
    out = _shoal(host, "images").stdout.decode().splitlines()
    assert out[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert any(line.split()[:2] == ["clitest", "1"] for line in out[1:])


def test_run_rm_echo(host: str) -> None:
    result = _shoal(host, "run", "--rm", IMAGE, "echo", "hi")
    assert (result.returncode, result.stdout) == (0, b"hi\n"), result.stderr
    assert _shoal(host, "ps", "-aq").stdout == b""


def test_exit_code_and_streams_apart(host: str) -> None:
    result = _shoal(host, "run", "--name", "streams", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == b"out\n"
    assert result.stderr.endswith(b"err\n")
    ps = _shoal(host, "ps", "-a", "--format", "{{.Names}} {{.State}} {{.Status}}").stdout.decode()
    assert ps.startswith("streams exited Exited (3) ")
    assert _shoal(host, "rm", "streams").stdout == b"streams\n"


def test_command_not_found_exits_127(host: str) -> None:
    result = _shoal(host, "run", "--rm", IMAGE, "no-such-command")
    assert result.returncode == 127
    assert b"Error response from daemon: " in result.stderr and b"no-such-command" in result.stderr


def test_unknown_image_and_bad_memory(host: str) -> None:
    # A registry on a closed loopback port: the pull that follows never leaves this machine.
    result = _shoal(host, "run", "--rm", "127.0.0.1:9/nosuch:9", "true")
    assert result.returncode == 125
    assert result.stderr.startswith(b"Unable to find image '127.0.0.1:9/nosuch:9' locally\n")
    assert b"Error response from daemon: " in result.stderr
    result = _shoal(host, "run", "-m", "10XB", IMAGE)
    assert result.returncode == 125 and b"invalid size: '10XB'" in result.stderr


def test_stdin_is_forwarded(host: str) -> None:
    result = _shoal(host, "run", "--rm", "-i", IMAGE, "cat", input=b"one\ntwo\n")
    assert (result.returncode, result.stdout) == (0, b"one\ntwo\n"), result.stderr


def test_detached_lifecycle(host: str) -> None:
    script = 'trap "exit 0" TERM; echo started; while true; do sleep 0.1; done'
    run = _shoal(host, "run", "-d", "--name", "svc", "-m", "64m", "--pids-limit", "32", IMAGE, "sh", "-c", script)
    assert run.returncode == 0, run.stderr
    container = run.stdout.decode().strip()
    assert len(container) == 64
    try:
        assert (
            _shoal(host, "inspect", "-f", "{{.State.Running}} {{.HostConfig.Memory}}", "svc").stdout
            == b"true 67108864\n"
        )
        assert b"svc" in _shoal(host, "ps").stdout
        deadline = time.monotonic() + 10
        while (logs := _shoal(host, "logs", "svc").stdout) == b"" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert logs == b"started\n"
        exec_result = _shoal(host, "exec", "-e", "X=42", "svc", "sh", "-c", 'echo "x=$X"; exit 4')
        assert (exec_result.returncode, exec_result.stdout) == (4, b"x=42\n")
        stats = _shoal(host, "stats", "--no-stream", "svc").stdout.decode().splitlines()
        assert stats[1].split()[:2] == [container[:12], "svc"] and "/ 64MiB" in stats[1]
        assert _shoal(host, "stop", "-t", "5", "svc").stdout == b"svc\n"
        assert _shoal(host, "wait", "svc").stdout == b"0\n"
    finally:
        _shoal(host, "rm", "-f", "svc")
