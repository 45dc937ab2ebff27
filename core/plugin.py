"""How a plugin declares itself, and what it is handed when it is set up.

A plugin is a ``Plugin`` object that an entry point in the ``shoal.plugins`` group names
(``myplugin = "my_package.glue:plugin"``), or that a plugin set loads from a module path
(``[load].modules``). The module holding it is the registration glue: it stays light and
imports the implementation only inside ``setup``, so listing plugins imports nothing heavy.

Example (a complete third-party plugin)::

    from dataclasses import dataclass
    from shoal import Plugin, hookimpl, setting

    @dataclass(frozen=True)
    class AuditConfig:
        path: str = setting("/var/log/shoal-audit.log", "File the audit lines go to.")

    class Audit:
        def __init__(self, config: AuditConfig) -> None:
            self.config = config

        @hookimpl
        def shoal_event(self, event):
            ...

    async def setup(ctx):
        ctx.add_hooks(Audit(ctx.config))

    plugin = Plugin(name="audit", summary="Write every event to a file.",
                    config=AuditConfig, setup=setup)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pluggy
    import trio

    from .events import EventBus

_NO_DEFAULT: Any = dataclasses.MISSING


def setting(default: Any = _NO_DEFAULT, doc: str = "", *, factory: Callable[[], Any] | None = None) -> Any:
    """Declare a config field with its default and the one-line doc ``shoal config default`` prints.

    Use ``factory`` for mutable defaults (lists, dicts). A field without a default must be
    set in the plugin's TOML table.
    """
    if not doc:
        raise TypeError("every setting needs a doc string")
    if factory is not None:
        return field(default_factory=factory, metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class NoConfig:
    """Config of a plugin that has no settings."""


class ServiceFn(Protocol):
    def __call__(self, *, task_status: trio.TaskStatus[Any] = ...) -> Awaitable[None]: ...


#: What ``Plugin.setup`` may return: an awaitable giving the provider (or None for a plugin
#: that fills no slot), or an async context manager that gives it and cleans up on exit.
SetupResult = Awaitable[Any] | AbstractAsyncContextManager[Any]


@dataclass(frozen=True)
class Plugin:
    """A plugin's declaration."""

    #: Unique name, used in ``[load].enable``, ``[slots]`` and ``[plugins.NAME]``.
    name: str
    #: One line on what it does, shown by ``shoal plugins``.
    summary: str
    #: Called once at start-up with a ``PluginContext``; see ``SetupResult``.
    setup: Callable[[PluginContext], SetupResult]
    #: The slot it fills, if any (a key of ``shoal.slots.SLOTS``).
    slot: str | None = None
    #: Slots whose providers must be set up before this plugin.
    requires: tuple[str, ...] = ()
    #: Slots used when some plugin fills them; set up first if so.
    uses: tuple[str, ...] = ()
    #: A frozen dataclass; the ``[plugins.NAME]`` table is decoded into it.
    config: type = NoConfig
    #: Cheap check, without side effects, of whether this host can run the plugin: returns
    #: a reason to skip it, or None. Runs before setup and for ``shoal plugins``.
    probe: Callable[[Any], str | None] | None = None


@dataclass
class PluginContext:
    """What a plugin's setup gets: its config, its slots, and the engine's shared parts."""

    plugin: Plugin
    config: Any
    #: The engine's data root (persistent state) and run root (sockets, pid files).
    data_root: Path
    run_root: Path
    events: EventBus
    hook: pluggy.HookRelay
    _slots: dict[str, Any]
    _add_hooks: Callable[[Plugin, object], None]
    services: list[tuple[str, ServiceFn]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.plugin.name

    @property
    def data_dir(self) -> Path:
        """This plugin's own directory under the data root (created on first use)."""
        path = self.data_root / "plugins" / self.plugin.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def slot(self, name: str) -> Any:
        """The provider of a slot this plugin declared in ``requires`` (or ``uses``: None if unfilled)."""
        if name not in self.plugin.requires and name not in self.plugin.uses:
            raise LookupError(
                f"plugin {self.plugin.name!r} asked for slot {name!r} without declaring it in requires or uses"
            )
        return self._slots.get(name)

    def add_hooks(self, obj: object) -> None:
        """Register an object (or module) whose ``@hookimpl`` functions implement hooks."""
        self._add_hooks(self.plugin, obj)

    def add_service(self, name: str, fn: ServiceFn) -> None:
        """Run ``fn`` as a long-lived task once every provider is set up.

        ``fn`` calls ``task_status.started()`` when it is ready; the engine reports ready
        only after every service has. An exception from a service stops the engine.
        """
        self.services.append((name, fn))
