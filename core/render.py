"""Writing a plugin set back out as complete, commented TOML (``shoal config default``).

Every setting of every enabled plugin is written with its doc and current value, so the
output documents the config and loads back to the same ``Config``. Plugins that are
available but not enabled appear as commented-out tables.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from .catalog import Catalog, PluginLoadError
from .config import CONFIG_VERSION, Config
from .decode import describe_type, field_doc
from .slots import SLOTS

_BARE_KEY = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def toml_key(key: str) -> str:
    return key if key and set(key) <= _BARE_KEY else json.dumps(key)


def toml_value(value: Any) -> str:
    """A Python value (as config decoding produces) written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    if dataclasses.is_dataclass(value):
        return toml_value({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return json.dumps(str(value))


def _settings(obj: Any, comment_out: bool = False) -> list[str]:
    lines = []
    hints = typing.get_type_hints(type(obj))
    prefix = "# " if comment_out else ""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        lines.append(f"# {field_doc(f)} ({describe_type(hints[f.name])})")
        if value is None:
            lines.append(f"# {toml_key(f.name)} =   (unset)")
        else:
            lines.append(f"{prefix}{toml_key(f.name)} = {toml_value(value)}")
    return lines


def render_config(config: Config, catalog: Catalog) -> str:
    """The complete TOML text of ``config``."""
    out = [
        "# shoal plugin set: every setting, with its doc and value.",
        "# Write only what you change in your own file, with `extend` pointing at a preset.",
        f"version = {CONFIG_VERSION}",
        "",
        "[engine]",
        *_settings(config.engine),
        "",
        "[load]",
        "# Plugins to load, in this order where dependencies allow.",
        f"enable = {toml_value([e.plugin.name for e in config.plugins] + list(config.idle))}",
        "# Plugins removed from what `enable` (and extended files) list.",
        f"disable = {toml_value(list(config.disabled))}",
        "# Plugins that must start: start-up fails if one is skipped.",
        f"required = {toml_value([e.plugin.name for e in config.plugins if e.required])}",
        "",
        "[slots]",
    ]
    for slot in SLOTS:
        if slot in config.slots:
            out.append(f"{slot} = {toml_value(config.slots[slot])}")
        else:
            out.append(f"# {slot} =   (no enabled plugin fills it)")
    for entry in config.plugins:
        if dataclasses.fields(entry.config):
            out += ["", f"# {entry.plugin.summary}", f"[plugins.{toml_key(entry.plugin.name)}]", *_settings(entry.config)]
    enabled = {e.plugin.name for e in config.plugins} | set(config.idle)
    for name in catalog.names():
        if name in enabled:
            continue
        try:
            plugin = catalog.entries[name].load()
        except PluginLoadError as exc:
            out += ["", f"# [plugins.{toml_key(name)}]   (cannot load: {exc})"]
            continue
        try:
            defaults = plugin.config()
        except TypeError:  # a required setting has no default
            out += ["", f"# {plugin.summary} Not enabled; its settings have required values.", f"# [plugins.{toml_key(name)}]"]
            continue
        out += ["", f"# {plugin.summary} Not enabled.", f"# [plugins.{toml_key(name)}]", *_settings(defaults, comment_out=True)]
    return "\n".join(out) + "\n"

