"""The real docker CLI against a real shoald with the bridge plugin: networks, --network, -p."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.presets import preset_dir
from shoaltest import Daemon, remove_cgroup_parent, run_daemon

from bridge_support import Names

pytestmark = [pytest.mark.root, pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")]


@pytest.fixture
def docker(tmp_path: Path, busybox_dir: Path) -> Iterator[tuple[Daemon, dict[str, str], Names]]:
    names = Names()
    parent = f"shoal-test-{secrets.token_hex(4)}"
    config = tmp_path / "shoal.toml"
    config.write_text(f"""extend = "{preset_dir() / 'default.toml'}"
[plugins.cgroups]
parent = "{parent}"
{names.bridge_settings()}""")
    tar = tmp_path / "rootfs.tar"
    with tarfile.open(tar, "w") as archive:
        for entry in sorted(busybox_dir.iterdir()):
            archive.add(entry, arcname=entry.name)
    with run_daemon(config, tmp_path) as daemon:
        daemon.wait_ready()
        env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'run' / 'shoal.sock'}", "DOCKER_CONFIG": str(tmp_path / "run")}
        subprocess.run(["docker", "import", "--change", 'CMD ["sh"]', str(tar), "busybox:compat"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        try:
            yield daemon, env, names
        finally:
            ids = subprocess.run(["docker", "ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], env=env, capture_output=True)
            subprocess.run(["docker", "network", "prune", "-f"], env=env, capture_output=True)
    leftovers = names.links(), names.table_exists()
    names.cleanup()
    remove_cgroup_parent(parent)
    assert leftovers == ([], False), f"left behind: {leftovers}"


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.returncode}\n{result.stdout}{result.stderr}")
    return result


def test_docker_network_create_run_and_publish(docker: tuple[Daemon, dict[str, str], Names]) -> None:
    _, env, names = docker
    subnet = f"10.{names.octet}.200.0/24"
    run(env, "network", "create", "--subnet", subnet, "--gateway", f"10.{names.octet}.200.254", "front")
    assert "front" in run(env, "network", "ls", "--format", "{{.Name}}").stdout.split()
    clash = run(env, "network", "create", "--subnet", f"10.{names.octet}.200.0/25", "clash", check=False)
    assert clash.returncode != 0 and "overlaps" in clash.stderr

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run(env, "run", "-d", "--name", "srv", "--network", "front", "--ip", f"10.{names.octet}.200.10",
        "-p", f"127.0.0.1:{port}:80", "busybox:compat", "nc", "-l", "-p", "80")  # fmt: skip
    inspect = run(env, "inspect", "-f", "{{.NetworkSettings.Networks.front.IPAddress}} {{json .NetworkSettings.Ports}}", "srv").stdout
    assert inspect.startswith(f"10.{names.octet}.200.10 ") and f'"HostPort":"{port}"' in inspect
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(b"via-docker\n")
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert run(env, "wait", "srv").stdout.strip() == "0"
    assert run(env, "logs", "srv").stdout == "via-docker\n"

    run(env, "run", "-d", "--name", "holder", "-p", f"127.0.0.1:{port}:80", "busybox:compat", "sleep", "30")
    taken = run(env, "run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox:compat", "sleep", "5", check=False)
    assert taken.returncode != 0 and "port is already allocated" in taken.stderr

    run(env, "run", "-d", "--name", "member", "--network", "front", "busybox:compat", "sleep", "30")
    busy = run(env, "network", "rm", "front", check=False)
    assert busy.returncode != 0 and "active endpoints" in busy.stderr
    unknown = run(env, "run", "--network", "nowhere", "busybox:compat", "true", check=False)
    assert unknown.returncode != 0 and "not found" in unknown.stderr
    run(env, "rm", "-f", "member", "holder")
    run(env, "network", "rm", "front")
    assert "front" not in run(env, "network", "ls", "--format", "{{.Name}}").stdout.split()
