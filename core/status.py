"""Plugin statuses: what the kernel reports after start-up, and what ``shoal plugins``
predicts for a config on this host without starting anything (probes only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .catalog import Catalog, PluginLoadError
from .config import Config

State = Literal["ok", "skipped", "idle", "disabled", "not enabled", "error"]


@dataclass(frozen=True)
class PluginStatus:
    """How a plugin fares (or would fare) on this host."""

    name: str
    slot: str | None
    state: State
    reason: str
    source: str

    def describe(self) -> str:
        return f"{self.state}: {self.reason}" if self.reason else self.state


def plugin_statuses(config: Config, catalog: Catalog) -> list[PluginStatus]:
    """Every catalog plugin's status under ``config``: enabled ones in start order first."""
    statuses: dict[str, PluginStatus] = {}
    for entry in config.plugins:
        plugin = entry.plugin
        reason = None
        for slot in plugin.requires:
            provider = statuses.get(config.slots[slot])
            if provider is not None and provider.state != "ok":
                reason = f"requires slot {slot!r}, whose provider {provider.name!r} would be skipped"
        if reason is None and plugin.probe is not None:
            reason = plugin.probe(entry.config)
        state: State = "skipped" if reason else "ok"
        statuses[plugin.name] = PluginStatus(plugin.name, plugin.slot, state, reason or "", entry.source)
    for name in catalog.names():
        if name in statuses:
            continue
        entry = catalog.entries[name]
        try:
            slot = entry.load().slot
        except PluginLoadError as exc:
            statuses[name] = PluginStatus(name, None, "error", str(exc), entry.source)
            continue
        if name in config.idle:
            statuses[name] = PluginStatus(name, slot, "idle", config.idle[name], entry.source)
        elif name in config.disabled:
            statuses[name] = PluginStatus(name, slot, "disabled", "", entry.source)
        else:
            statuses[name] = PluginStatus(name, slot, "not enabled", "", entry.source)
    return list(statuses.values())
