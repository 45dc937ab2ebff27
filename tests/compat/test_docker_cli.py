"""The real docker CLI drives shoald: run, ps, logs, exec, -it, stop, rm, inspect, stats."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import time

import pytest

from compat_support import IMAGE, docker_env

pytestmark = [pytest.mark.root, pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed")]


def docker(shoald, *args: str, check: bool = True, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], env=docker_env(shoald), capture_output=True, text=True, timeout=timeout,
                          check=check, input=input)  # fmt: skip


def test_run_rm_echo(shoald) -> None:
    out = docker(shoald, "run", "--rm", IMAGE, "echo", "hi")
    assert out.stdout == "hi\n"
    assert docker(shoald, "ps", "-a", "-q").stdout.strip() == ""


def test_run_exit_codes(shoald) -> None:
    assert docker(shoald, "run", "--rm", IMAGE, "sh", "-c", "exit 3", check=False).returncode == 3
    missing = docker(shoald, "run", "--rm", IMAGE, "nope", check=False)
    assert missing.returncode == 127
    assert 'exec: "nope": executable file not found in $PATH' in missing.stderr


def test_detached_ps_logs_exec_inspect_stats_stop_rm(shoald) -> None:
    cid = docker(shoald, "run", "-d", "--name", "web", IMAGE, "sh", "-c",
                 "trap 'exit 0' TERM; i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done").stdout.strip()  # fmt: skip
    assert len(cid) == 64
    ps = docker(shoald, "ps").stdout.splitlines()
    assert ps[0].split()[:2] == ["CONTAINER", "ID"] and any(line.startswith(cid[:12]) and line.endswith("web") for line in ps)
    time.sleep(0.6)
    logs = docker(shoald, "logs", "web").stdout
    assert logs.startswith("tick0\ntick1\n")
    assert docker(shoald, "exec", "web", "sh", "-c", "echo in $(hostname)").stdout == f"in {cid[:12]}\n"
    info = json.loads(docker(shoald, "inspect", "web").stdout)
    assert info[0]["Id"] == cid and info[0]["State"]["Running"] is True and info[0]["State"]["Pid"] > 1
    stats = docker(shoald, "stats", "--no-stream", "web").stdout.splitlines()
    assert stats[0].split()[:3] == ["CONTAINER", "ID", "NAME"] and stats[1].split()[1] == "web"
    start = time.monotonic()
    assert docker(shoald, "stop", "web").stdout.strip() == "web"
    assert time.monotonic() - start < 5  # the trap ended it, no 10 s grace period
    assert json.loads(docker(shoald, "inspect", "web").stdout)[0]["State"]["ExitCode"] == 0
    assert docker(shoald, "rm", "web").stdout.strip() == "web"
    gone = docker(shoald, "inspect", "web", check=False)
    assert gone.returncode == 1 and "No such object: web" in gone.stderr


def test_logs_follow_ends_with_the_container(shoald) -> None:
    cid = docker(shoald, "run", "-d", IMAGE, "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done").stdout.strip()
    assert docker(shoald, "logs", "-f", cid, timeout=20).stdout == "1\n2\n3\n"
    docker(shoald, "rm", cid)


def test_run_interactive_with_a_terminal(shoald) -> None:
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(docker_env(shoald))
        os.execvp("docker", ["docker", "run", "-it", "--rm", IMAGE, "sh"])
    output = b""

    def read_until(marker: bytes, timeout: float = 20) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no {marker!r} in {output!r}")
            try:
                output += os.read(fd, 4096)
            except OSError:
                break

    read_until(b"# ")
    os.write(fd, b"echo $((6*7)) $(tty)\n")
    read_until(b"42 /dev/pts/0")
    os.write(fd, b"exit 5\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 5


def test_bad_input_over_the_cli(shoald) -> None:
    # A registry on a closed loopback port: the pull the CLI asks for never leaves this machine.
    unknown = docker(shoald, "run", "--rm", "127.0.0.1:9/nosuch:image", "true", check=False)
    assert unknown.returncode == 125 and "Unable to find image '127.0.0.1:9/nosuch:image' locally" in unknown.stderr
    bad_cap = docker(shoald, "run", "--rm", "--cap-add", "FLY", IMAGE, "true", check=False)
    assert bad_cap.returncode == 125 and 'unknown capability: "CAP_FLY"' in bad_cap.stderr
    docker(shoald, "create", "--name", "taken", IMAGE, "true")
    taken = docker(shoald, "create", "--name", "taken", IMAGE, "true", check=False)
    assert taken.returncode == 1 and 'The container name "/taken" is already in use' in taken.stderr
    docker(shoald, "rm", "taken")


def test_top_pause_rename_wait(shoald) -> None:
    cid = docker(shoald, "run", "-d", "--name", "topbox", IMAGE, "sh", "-c", "trap 'exit 3' TERM; sleep 100 & wait").stdout.strip()
    top = docker(shoald, "top", "topbox").stdout.splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and any("sleep 100" in line for line in top[1:])
    docker(shoald, "pause", "topbox")
    assert json.loads(docker(shoald, "inspect", "topbox").stdout)[0]["State"]["Status"] == "paused"
    docker(shoald, "unpause", "topbox")
    docker(shoald, "rename", "topbox", "renamed")
    docker(shoald, "kill", "-s", "TERM", "renamed")
    assert docker(shoald, "wait", "renamed").stdout.strip() == "3"
    docker(shoald, "rm", cid)
