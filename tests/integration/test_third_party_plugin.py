"""A plugin from another distribution: found by entry point, configured from TOML, run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from shoaltest import run_daemon

EXAMPLE = Path(__file__).resolve().parents[1] / "thirdparty" / "shoal_audit"


def make_distribution(site: Path) -> None:
    """Install the example plugin as a distribution would: package, metadata, entry point."""
    shutil.copytree(EXAMPLE, site / "shoal_audit")
    info = site / "shoal_audit-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shoal-audit\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text('[shoal.plugins]\naudit = shoal_audit:plugin\n')


def test_third_party_plugin_loads_is_configured_and_runs(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site)
    log = tmp_path / "audit.log"
    config = tmp_path / "set.toml"
    config.write_text(
        'extend = "{}"\n[load]\nenable = ["audit"]\n[plugins.audit]\npath = "{}"\ntypes = ["daemon"]\n'.format(
            Path(__import__("shoal.presets").presets.preset_dir() / "embedded.toml"), log
        )
    )
    env = {**os.environ, "PYTHONPATH": str(site)}

    listing = subprocess.run([sys.executable, "-m", "shoal.cli", "plugins", "--config", str(config)],
                             env=env, capture_output=True, text=True, check=True)  # fmt: skip
    audit_row = next(line for line in listing.stdout.splitlines() if line.startswith("audit "))
    assert "ok" in audit_row and "shoal-audit 1.0 (shoal_audit:plugin)" in audit_row

    with run_daemon(config, tmp_path, env=env) as daemon:
        daemon.wait_ready()
        assert "audit" in daemon.ready_info()["plugins"]
    assert daemon.returncode == 0
    lines = log.read_text().splitlines()
    assert lines[0] == "ready slots=membership,store types=daemon"
    assert lines[-1] == "stopping"


def test_unknown_plugin_from_missing_distribution_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "set.toml"
    config.write_text('[load]\nenable = ["sqlite", "audit"]\n')
    out = subprocess.run([sys.executable, "-m", "shoal.cli", "config", "check", str(config)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2
    assert f'{config}:2: [load].enable: unknown plugin "audit"' in out.stderr
