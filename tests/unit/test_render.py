"""`shoal config default` writes a complete config that loads back unchanged."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shoal.catalog import Catalog
from shoal.config import load_config, parse_config
from shoal.presets import preset_names, resolve_config_path
from shoal.render import render_config


def _essence(config):
    return (config.engine, [(e.plugin.name, e.config, e.required) for e in config.plugins], config.slots, config.idle)


@pytest.mark.parametrize("preset", preset_names())
def test_rendered_preset_loads_back_unchanged(preset: str) -> None:
    catalog = Catalog.discover()
    config = load_config(resolve_config_path(preset), catalog)
    text = render_config(config, catalog)
    again = parse_config(text, catalog, name=f"{preset}-rendered.toml")
    assert _essence(again) == _essence(config)
    assert render_config(again, catalog) == text


def test_every_setting_of_an_enabled_plugin_is_written_with_its_doc() -> None:
    catalog = Catalog.discover()
    text = render_config(load_config(resolve_config_path("default"), catalog), catalog)
    assert "[plugins.cgroups]\n# cgroup driver:" in text
    assert "\n# [plugins.raft]" in text  # a plugin not enabled: commented out, still documented


def test_config_check_command() -> None:
    ok = subprocess.run([sys.executable, "-m", "shoal.cli", "config", "check", str(resolve_config_path("registry"))],
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0 and ok.stdout.endswith(": ok (1 plugin to start: registry)\n")
