"""shoal-audit: an example third-party plugin, packaged outside shoal.

It appends one line per event to a file, and one line when the engine is ready and when it
stops. A distribution registers it with an entry point::

    [project.entry-points."shoal.plugins"]
    audit = "shoal_audit:plugin"

and a plugin set enables and configures it::

    [load]
    enable = ["audit"]
    [plugins.audit]
    path = "/var/log/shoal-audit.log"
    types = ["container", "image"]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shoal import Plugin, PluginContext, hookimpl, setting


@dataclass(frozen=True)
class AuditConfig:
    path: str = setting("/var/log/shoal-audit.log", "File the audit lines are appended to.")
    types: list[str] = setting(doc="Event types to record; empty: all.", factory=list)


class Audit:
    """Hook implementations: each writes one line."""

    def __init__(self, config: AuditConfig) -> None:
        self.config = config
        self.path = Path(config.path)

    def _write(self, line: str) -> None:
        with self.path.open("a") as f:
            f.write(line + "\n")

    @hookimpl
    def shoal_engine_ready(self, engine) -> None:
        self._write(f"ready slots={','.join(sorted(engine.config.slots))} types={','.join(self.config.types) or 'all'}")

    @hookimpl
    def shoal_event(self, event) -> None:
        if not self.config.types or event.type in self.config.types:
            self._write(f"event {event.type} {event.action} {event.actor_id}")

    @hookimpl
    def shoal_engine_stopping(self, engine) -> None:
        self._write("stopping")


async def setup(ctx: PluginContext) -> None:
    ctx.add_hooks(Audit(ctx.config))


plugin = Plugin(name="audit", summary="Append engine events to a file.", config=AuditConfig, setup=setup)
