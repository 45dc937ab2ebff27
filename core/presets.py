"""Preset plugin sets (conf/*.toml, installed as ``shoal.conf``) and how names find them."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def preset_dir() -> Path:
    return Path(str(importlib.resources.files("shoal.conf")))


def preset_names() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.toml"))


def resolve_config_path(value: str) -> Path:
    """A config argument as a file: an existing path, else a preset name ("embedded")."""
    path = Path(value)
    if path.exists() or "/" in value or value.endswith(".toml"):
        return path
    preset = preset_dir() / f"{value}.toml"
    return preset if preset.exists() else path
