"""The kernel: sets up plugins in dependency order, runs their services, shuts down cleanly.

``open_engine`` is the whole life cycle: validate the config, register hooks, set up each
plugin (a plugin may skip itself), start services with ``nursery.start``, report ready; on
exit tell the hooks, cancel services, and close providers in reverse order. Start-up either
reaches ready or fails with one error naming the plugin, with everything already set up
closed again.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pluggy
import trio

from . import hookspecs
from .catalog import Catalog
from .config import Config, PluginEntry, load_config
from .errors import PluginError, Skip
from .events import EventBus
from .plugin import Plugin, PluginContext, ServiceFn
from .presets import resolve_config_path
from .status import PluginStatus

log = logging.getLogger("shoal.kernel")


class Engine:
    """A running kernel: its providers, hooks, events and plugin statuses."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_root = Path(config.engine.data_root)
        self.run_root = Path(config.engine.run_root)
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.hook = self.pm.hook
        self.events = EventBus(observe=lambda event: self.hook.shoal_event(event=event))
        self.statuses: dict[str, PluginStatus] = {}
        self._providers: dict[str, Any] = {}
        self._hook_owners: dict[str, str] = {}
        #: Seconds from the start of ``open_engine`` to ready.
        self.boot_seconds: float | None = None

    def slot(self, name: str) -> Any:
        """The provider filling a slot; ``LookupError`` names the slot if none does."""
        try:
            return self._providers[name]
        except KeyError:
            filled = ", ".join(sorted(self._providers)) or "none"
            raise LookupError(f"no plugin fills slot {name!r} in this engine (filled slots: {filled})") from None

    def has_slot(self, name: str) -> bool:
        return name in self._providers

    def _add_hooks(self, plugin: Plugin, obj: object) -> None:
        name = f"{plugin.name}#{len(self._hook_owners)}"
        try:
            self.pm.register(obj, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(plugin.name, f"bad hook implementation: {exc}") from exc
        self._hook_owners[name] = plugin.name

    def _check_hooks(self) -> None:
        """Fail on hook implementations that match no hook spec (a misspelled hook name)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            owner = self._hook_owners.get(self.pm.get_name(exc.plugin) or "", "?")
            raise PluginError(owner, f"implements an unknown hook: {exc}") from exc


async def _enter(result: Any, stack: AsyncExitStack) -> Any:
    if isinstance(result, AbstractAsyncContextManager):
        return await stack.enter_async_context(result)
    if inspect.isawaitable(result):
        return await result
    raise TypeError(f"setup returned {type(result).__name__}; expected an awaitable or an async context manager")


def _skip_reason(entry: PluginEntry, engine: Engine) -> str | None:
    """Why this plugin cannot start: its probe says so, or a slot it requires stayed empty."""
    plugin = entry.plugin
    for slot in plugin.requires:
        provider = engine.config.slots[slot]
        if not engine.has_slot(slot):
            status = engine.statuses[provider]
            return f"requires slot {slot!r}, whose provider {provider!r} was skipped ({status.reason})"
    if plugin.probe is not None:
        return plugin.probe(entry.config)
    return None


async def _setup_plugin(entry: PluginEntry, engine: Engine, stack: AsyncExitStack) -> PluginContext | None:
    plugin = entry.plugin
    try:
        reason = _skip_reason(entry, engine)
        if reason is not None:
            raise Skip(reason)
        ctx = PluginContext(
            plugin=plugin,
            config=entry.config,
            data_root=engine.data_root,
            run_root=engine.run_root,
            events=engine.events,
            hook=engine.hook,
            _slots=engine._providers,
            _add_hooks=engine._add_hooks,
        )
        provider = await _enter(plugin.setup(ctx), stack)
    except Skip as skip:
        if entry.required:
            raise PluginError(plugin.name, f"is required but was skipped: {skip}") from skip
        log.info("plugin %s skipped: %s", plugin.name, skip)
        engine.statuses[plugin.name] = PluginStatus(plugin.name, plugin.slot, "skipped", str(skip), entry.source)
        return None
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(plugin.name, f"setup failed: {type(exc).__name__}: {exc}") from exc
    if plugin.slot is not None:
        if provider is None:
            raise PluginError(plugin.name, f"setup returned no provider for slot {plugin.slot!r}")
        engine._providers[plugin.slot] = provider
    engine.statuses[plugin.name] = PluginStatus(plugin.name, plugin.slot, "ok", "", entry.source)
    return ctx


async def _start_service(nursery: trio.Nursery, plugin: str, name: str, fn: ServiceFn) -> None:
    try:
        await nursery.start(fn)
    except Exception as exc:
        raise PluginError(plugin, f"service {name!r} failed to start: {type(exc).__name__}: {exc}") from exc


@contextmanager
def _unwrap_single_errors() -> Iterator[None]:
    """Let a lone error (a failed service, an error in the caller's block) out as itself.

    Several errors at once stay together in their exception group.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = group.exceptions
        if len(leaves) == 1 and isinstance(leaves[0], Exception) and not isinstance(leaves[0], BaseExceptionGroup):
            raise leaves[0] from None
        raise


def _as_config(config: str | Path | Config, catalog: Catalog | None) -> Config:
    if isinstance(config, Config):
        return config
    return load_config(resolve_config_path(str(config)), catalog)


@asynccontextmanager
async def open_engine(config: str | Path | Config, *, catalog: Catalog | None = None) -> AsyncIterator[Engine]:
    """Run a kernel for the duration of the ``async with`` block.

    ``config`` is a plugin set: a path, a preset name ("embedded"), or a loaded ``Config``.
    """
    started = time.perf_counter()
    engine = Engine(_as_config(config, catalog))
    for name, reason in engine.config.idle.items():
        engine.statuses[name] = PluginStatus(name, None, "idle", reason, "")
    for name in engine.config.disabled:
        engine.statuses[name] = PluginStatus(name, None, "disabled", "listed in [load].disable", "")
    async with AsyncExitStack() as stack:
        contexts = []
        for entry in engine.config.plugins:
            ctx = await _setup_plugin(entry, engine, stack)
            if ctx is not None:
                contexts.append(ctx)
        engine._check_hooks()
        with _unwrap_single_errors():
            async with trio.open_nursery() as nursery:
                for ctx in contexts:
                    for name, fn in ctx.services:
                        await _start_service(nursery, ctx.name, name, fn)
                engine.boot_seconds = time.perf_counter() - started
                engine.hook.shoal_engine_ready(engine=engine)
                try:
                    yield engine
                finally:
                    engine.hook.shoal_engine_stopping(engine=engine)
                    nursery.cancel_scope.cancel()
