"""Finding plugins: the ``shoal.plugins`` entry-point group and module paths named in TOML.

Built-in plugins are entries of that group like any third-party one. Only the registration
glue is imported here, and only when a plugin's declaration is needed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from .errors import ShoalError
from .plugin import Plugin
from .slots import SLOTS

GROUP = "shoal.plugins"


class PluginLoadError(ShoalError):
    """A plugin's declaration could not be imported or is malformed."""


@dataclass
class CatalogEntry:
    """A plugin that can be enabled, and where it comes from."""

    name: str
    source: str  # "shoal 0.1.0 (shoal.plugins.sqlite:plugin)", "module ./dev/x.py"
    _load: object  # EntryPoint or a zero-argument loader
    _plugin: Plugin | None = None

    def load(self) -> Plugin:
        """Import the declaration; raises ``PluginLoadError`` naming the plugin."""
        if self._plugin is None:
            try:
                obj = self._load.load() if isinstance(self._load, EntryPoint) else self._load()  # type: ignore[operator]
            except Exception as exc:
                raise PluginLoadError(f"plugin {self.name!r} ({self.source}) failed to import: {type(exc).__name__}: {exc}") from exc
            self._plugin = validate_declaration(obj, self.name, self.source)
        return self._plugin


def validate_declaration(obj: object, name: str | None, source: str) -> Plugin:
    """Check that ``obj`` is a well-formed ``Plugin``; ``name`` is the name it was listed under."""
    if not isinstance(obj, Plugin):
        raise PluginLoadError(f"{source}: expected a shoal.Plugin, found {type(obj).__name__}")
    problems = []
    if name is not None and obj.name != name:
        problems.append(f"declares the name {obj.name!r} but is registered as {name!r}")
    for slot in (obj.slot, *obj.requires, *obj.uses):
        if slot is not None and slot not in SLOTS:
            problems.append(f"names unknown slot {slot!r} (slots: {', '.join(SLOTS)})")
    if obj.slot is not None and obj.slot in obj.requires:
        problems.append(f"requires the slot {obj.slot!r} it fills")
    if problems:
        raise PluginLoadError(f"plugin {obj.name!r} ({source}): " + "; ".join(problems))
    return obj


@dataclass
class Catalog:
    """Every plugin that can be enabled, by name."""

    entries: dict[str, CatalogEntry] = field(default_factory=dict)
    #: Problems found while listing (two plugins of one name).
    problems: list[str] = field(default_factory=list)

    @classmethod
    def discover(cls) -> Catalog:
        """List the plugins registered in the ``shoal.plugins`` entry-point group."""
        catalog = cls()
        for ep in entry_points(group=GROUP):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown distribution"
            catalog.add(CatalogEntry(ep.name, f"{dist} ({ep.value})", ep))
        return catalog

    def add(self, entry: CatalogEntry) -> None:
        existing = self.entries.get(entry.name)
        if existing is not None:
            if existing.source != entry.source:  # the same distribution can be seen twice on sys.path
                self.problems.append(f"plugin {entry.name!r} is registered twice: by {existing.source} and by {entry.source}")
            return
        self.entries[entry.name] = entry

    def add_module(self, ref: str, base: Path) -> str:
        """Load a plugin from a module path named in TOML; return its name.

        ``ref`` is a dotted module ("my_pkg.glue") or a ``.py`` file relative to ``base``, with
        an optional ":attribute" (default ``plugin``).
        """
        target, _, attr = ref.partition(":")
        attr = attr or "plugin"
        if target.endswith(".py"):
            path = (base / target).resolve()
            if not path.is_file():
                raise PluginLoadError(f"module file {str(path)!r} does not exist")
            module_name = f"shoal_local_plugin_{path.stem}_{abs(hash(str(path)))}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[module_name]
                raise PluginLoadError(f"module {ref!r} failed to import: {type(exc).__name__}: {exc}") from exc
            source = f"module {path}"
        else:
            try:
                module = importlib.import_module(target)
            except Exception as exc:
                raise PluginLoadError(f"module {ref!r} failed to import: {type(exc).__name__}: {exc}") from exc
            source = f"module {target}"
        if not hasattr(module, attr):
            raise PluginLoadError(f"module {ref!r} has no attribute {attr!r}")
        plugin = validate_declaration(getattr(module, attr), None, source)
        if plugin.name in self.entries:
            raise PluginLoadError(f"module {ref!r} declares plugin {plugin.name!r}, a name already registered by {self.entries[plugin.name].source}")
        self.entries[plugin.name] = CatalogEntry(plugin.name, source, lambda: plugin, plugin)
        return plugin.name

    def names(self) -> list[str]:
        return sorted(self.entries)
