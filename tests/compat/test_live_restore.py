"""Live restore with real processes: shoald restarts, its containers keep running."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from compat_support import IMAGE
from shoal.presets import preset_dir
from shoaltest import run_daemon

pytestmark = [pytest.mark.root, pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed")]


def test_containers_survive_a_daemon_restart_with_logs_and_exit_codes(tmp_path: Path, busybox_tar: Path) -> None:
    config = tmp_path / "shoal.toml"
    config.write_text(f'extend = "{preset_dir() / "default.toml"}"\n[plugins.cgroups]\nparent = "shoal-test-{secrets.token_hex(4)}"\n')
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'run' / 'shoal.sock'}", "DOCKER_CONFIG": str(tmp_path)}

    def docker(*args: str) -> str:
        return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, check=True, timeout=60).stdout

    with run_daemon(config, tmp_path) as daemon:
        daemon.wait_ready()
        docker("import", str(busybox_tar), IMAGE)
        docker("run", "-d", "--name", "survivor", IMAGE, "sh", "-c",
               "echo before; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after; exit 7")  # fmt: skip
        pid = json.loads(docker("inspect", "survivor"))[0]["State"]["Pid"]
    assert daemon.returncode == 0
    assert Path(f"/proc/{pid}").exists()  # shoald is gone; the container is not
    with run_daemon(config, tmp_path) as daemon:
        daemon.wait_ready()
        state = json.loads(docker("inspect", "survivor"))[0]["State"]
        assert state["Running"] and state["Pid"] == pid
        docker("exec", "survivor", "touch", "/tmp/go")
        assert docker("wait", "survivor").strip() == "7"
        deadline = time.monotonic() + 10
        while docker("logs", "survivor") != "before\nafter\n" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert docker("logs", "survivor") == "before\nafter\n"
        docker("rm", "survivor")
