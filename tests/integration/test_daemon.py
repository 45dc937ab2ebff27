"""A real ``shoald`` process: ready, clean shutdown on signals, clear failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shoaltest import run_daemon


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ready_then_clean_shutdown_on_signal(tmp_path: Path, sig: int) -> None:
    with run_daemon("embedded", tmp_path) as daemon:
        daemon.wait_ready()
        info = daemon.ready_info()
        assert info["pid"] == daemon.proc.pid
        assert info["plugins"] == ["sqlite", "local-membership"]
        assert daemon.stop(sig) == 0
    assert not daemon.ready_file.exists()
    log = daemon.log
    assert "shoald 0.1.0 ready in" in log
    assert f"received {signal.Signals(sig).name}: shutting down" in log
    assert log.rstrip().endswith("shoald stopped")
    assert (tmp_path / "data" / "plugins" / "sqlite" / "store.db").exists()


def test_invalid_config_exits_2_listing_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[load]\nenable = ["sqlit"]\n[plugins.sqlite]\nhistory = "long"\n')
    out = subprocess.run([sys.executable, "-m", "shoal.daemon", "--config", str(config)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "invalid config (2 problems)" in out.stderr
    assert f'{config}:2: [load].enable: unknown plugin "sqlit" (did you mean "sqlite"?)' in out.stderr
    assert f'{config}:3: [plugins.sqlite]: table for plugin "sqlite", which is not enabled' in out.stderr


def test_failing_plugin_exits_1_naming_it_and_leaves_nothing_running(tmp_path: Path) -> None:
    pidfile = tmp_path / "helper.pid"
    (tmp_path / "plugins.py").write_text(f'''
import subprocess
from contextlib import asynccontextmanager
from shoal import Plugin

@asynccontextmanager
async def start_helper(ctx):
    proc = subprocess.Popen(["sleep", "300"])
    open({str(pidfile)!r}, "w").write(str(proc.pid))
    try:
        yield None
    finally:
        proc.kill()
        proc.wait()

async def explode(ctx):
    raise OSError("cannot bind 127.0.0.1:1: permission denied")

helper = Plugin(name="helper", summary="Starts a child process.", setup=start_helper)
broken = Plugin(name="broken", summary="Fails at start-up.", setup=explode)
''')
    config = tmp_path / "set.toml"
    config.write_text('extend = "{}"\n[load]\nmodules = ["./plugins.py:helper", "./plugins.py:broken"]\n'.format(
        Path(__import__("shoal.presets").presets.preset_dir() / "embedded.toml")))
    with run_daemon(config, tmp_path) as daemon:
        assert daemon.proc.wait(30) == 1
    assert "shoald: plugin 'broken': setup failed: OSError: cannot bind 127.0.0.1:1: permission denied" in daemon.log
    helper_pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(helper_pid, 0)
    assert not daemon.ready_file.exists()
