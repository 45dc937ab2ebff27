"""The real ``docker`` CLI (client only) against the frontend, where it is installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import trio
from fake_engine import Served

DOCKER = shutil.which("docker")
pytestmark = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")


async def docker(served: Served, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": served.api.data_root.as_posix(),
        "DOCKER_HOST": served.url,
        "DOCKER_CONFIG": (served.api.data_root / "docker-config").as_posix(),
    }
    with trio.fail_after(20):
        return await trio.run_process([DOCKER, *args], env=env, stdin=stdin, capture_stdout=True, capture_stderr=True, check=False)


async def test_version_and_info(served: Served) -> None:
    r = await docker(served, "version", "--format", "{{json .Server}}")
    assert r.returncode == 0, r.stderr
    server = json.loads(r.stdout)
    assert server["ApiVersion"] == "1.50" and server["Os"] == "linux"
    r = await docker(served, "info", "--format", "{{.OSType}} {{.Containers}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == "linux 0"


async def test_ps_lists_containers(served: Served) -> None:
    await served.engine.create({"Image": "img", "Cmd": ["sleep"]}, name="cli-ps")
    await served.engine.start("cli-ps")
    r = await docker(served, "ps", "--format", "{{.Names}} {{.Image}} {{.State}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split("\n")[0] == "cli-ps img running"
    r = await docker(served, "ps", "-a", "--filter", "name=nomatch", "-q")
    assert (r.returncode, r.stdout) == (0, b"")


async def test_run_attaches_and_reports_the_exit_code(served: Served) -> None:
    r = await docker(served, "run", "--name", "cli-run", "img", "echo", "from", "run")
    assert (r.returncode, r.stdout) == (0, b"from run\n"), r.stderr
    r = await docker(served, "run", "img", "err", "failed", "7")
    assert (r.returncode, r.stderr.strip()) == (7, b"failed")


async def test_run_interactive_copies_stdin_then_half_closes(served: Served) -> None:
    r = await docker(served, "run", "-i", "img", "cat", stdin=b"one\ntwo\n")
    assert (r.returncode, r.stdout) == (0, b"one\ntwo\n"), r.stderr


async def test_exec_through_the_cli(served: Served) -> None:
    await served.engine.create({"Image": "img", "Cmd": ["sleep"]}, name="cli-exec")
    await served.engine.start("cli-exec")
    r = await docker(served, "exec", "cli-exec", "echo", "in", "exec")
    assert (r.returncode, r.stdout) == (0, b"in exec\n"), r.stderr
    r = await docker(served, "exec", "-i", "cli-exec", "cat", stdin=b"piped\n")
    assert (r.returncode, r.stdout) == (0, b"piped\n"), r.stderr


async def test_cli_errors(served: Served) -> None:
    r = await docker(served, "inspect", "nope")
    assert r.returncode == 1 and b"No such" in r.stderr
    await served.engine.create({"Image": "img", "Cmd": ["sleep"]}, name="cli-stopped")
    r = await docker(served, "stop", "cli-stopped")
    assert r.returncode == 0, r.stderr  # already stopped: 304, not an error
