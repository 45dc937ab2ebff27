"""The README stays true: its test command is what CI runs, its config reference is current."""

from __future__ import annotations

import re
from pathlib import Path

from shoal.catalog import Catalog
from shoal.config import load_config
from shoal.presets import resolve_config_path
from shoal.render import render_config

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    assert "bash .ci/test" in README
    assert "bash .ci/test" in (ROOT / ".ci" / "run").read_text()


def test_config_reference_is_the_output_of_shoal_config_default() -> None:
    block = re.search(r"<!-- config-reference:start -->\n```toml\n(.*?)```\n<!-- config-reference:end -->", README, re.S)
    assert block, "README lacks the config reference block"
    catalog = Catalog.discover()
    expected = render_config(load_config(resolve_config_path("default"), catalog), catalog)
    assert block.group(1) == expected, "regenerate it: .venv/bin/shoal config default"
