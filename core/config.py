"""Plugin sets in TOML: loading, ``extend``, strict validation, slot choice and start order.

A plugin set file::

    version = 1
    extend = "default.toml"          # optional, relative to this file
    [engine]                         # the core's own settings (EngineSettings)
    data_root = "/var/lib/shoal"
    [load]
    enable = ["sqlite", "cgroups"]   # added to what the extended file enables
    disable = ["cgroups"]            # removed from the result
    required = ["sqlite"]            # start-up fails if these cannot start
    modules = ["./dev/audit.py"]     # plugins loaded from module paths (enabled too)
    [slots]
    store = "sqlite"                 # which enabled plugin fills a slot
    [plugins.sqlite]                 # decoded strictly into the plugin's config dataclass
    path = "/var/lib/shoal/store.db"

Every problem is collected and reported at once, each with its file, line where known, the
TOML path and what was expected (``ConfigError``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .catalog import Catalog, PluginLoadError
from .decode import decode_dataclass, show, suggest
from .errors import ShoalError
from .plugin import Plugin, setting
from .slots import SLOTS

CONFIG_VERSION = 1
_TOP_KEYS = ("version", "extend", "engine", "load", "slots", "plugins")
_LOAD_KEYS = ("enable", "disable", "required", "modules")


@dataclass(frozen=True)
class EngineSettings:
    """The core's own settings, from ``[engine]``."""

    data_root: str = setting("/var/lib/shoal", "Persistent state: the store, images, containers.")
    run_root: str = setting("/run/shoal", "Runtime state: sockets, container state, readiness file.")
    log_level: Literal["debug", "info", "warning", "error"] = setting("info", "Least severe log level shoald prints.")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config."""

    file: str | None
    line: int | None
    path: str  # "[plugins.cgroups].driver"; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ShoalError):
    """A config with one or more problems; ``str()`` lists them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"invalid config ({count}):\n" + "\n".join(f"  {p}" for p in problems))


class _Source:
    """A config file's text, for finding the line of a table or key."""

    _HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
    _KEY = re.compile(r'^\s*("?)([A-Za-z0-9_.-]+)\1\s*=')

    def __init__(self, path: Path | None, text: str) -> None:
        self.path = path
        self.name = str(path) if path is not None else None
        self.lines = text.splitlines()

    def line_of(self, table: tuple[str, ...], key: str | None) -> int | None:
        """Line number of ``key`` in ``[table]`` (or of the header when key is None)."""
        current: tuple[str, ...] = ()
        header_line = None
        base_key = key.split("[", 1)[0].split(".", 1)[0] if key else None
        for number, text in enumerate(self.lines, 1):
            header = self._HEADER.match(text)
            if header:
                current = tuple(part.strip().strip('"') for part in header.group(1).split("."))
                if current == table:
                    header_line = number
                    if base_key is None:
                        return number
                continue
            if base_key is None:
                continue
            match = self._KEY.match(text)
            if not match:
                continue
            dotted = tuple(match.group(2).split("."))
            if (current, dotted[-1:]) == (table, (base_key,)) or (*current, *dotted) == (*table, base_key):
                return number
        return header_line


def table_path(table: tuple[str, ...], key: str | None) -> str:
    """``[plugins.cgroups].driver`` style path of a key."""
    head = f"[{'.'.join(table)}]" if table else ""
    if key is None:
        return head
    return f"{head}.{key}" if head else key


@dataclass
class _Collector:
    problems: list[Problem] = field(default_factory=list)

    def add(self, source: _Source | None, table: tuple[str, ...], key: str | None, message: str) -> None:
        line = source.line_of(table, key) if source is not None else None
        self.problems.append(Problem(source.name if source else None, line, table_path(table, key), message))


@dataclass
class _Raw:
    """A plugin set merged over its ``extend`` chain, each value remembering its file."""

    sources: list[_Source] = field(default_factory=list)
    engine: dict[str, Any] = field(default_factory=dict)
    engine_from: dict[str, _Source] = field(default_factory=dict)
    enable: dict[str, _Source] = field(default_factory=dict)  # ordered
    disable: dict[str, _Source] = field(default_factory=dict)
    required: dict[str, _Source] = field(default_factory=dict)
    modules: list[tuple[str, _Source]] = field(default_factory=list)
    slots: dict[str, tuple[str, _Source]] = field(default_factory=dict)
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    plugins_from: dict[tuple[str, str], _Source] = field(default_factory=dict)
    table_from: dict[str, _Source] = field(default_factory=dict)


@dataclass(frozen=True)
class PluginEntry:
    """An enabled plugin as the kernel will start it."""

    plugin: Plugin
    config: Any
    source: str
    required: bool


@dataclass(frozen=True)
class Config:
    """A validated plugin set."""

    files: tuple[str, ...]
    engine: EngineSettings
    #: Plugins to start, in dependency order.
    plugins: tuple[PluginEntry, ...]
    #: Slot -> name of the plugin that fills it.
    slots: dict[str, str]
    #: Enabled plugins that will not start, with the reason (their slot is filled by another).
    idle: dict[str, str]
    #: Plugins named in ``[load].disable``.
    disabled: tuple[str, ...]


# --------------------------------------------------------------------------- reading files


def _read(path: Path, raw: _Raw, errors: _Collector, chain: tuple[Path, ...]) -> None:
    """Merge ``path`` (after what it extends) into ``raw``."""
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        errors.add(None, (), None, f"extend cycle: {cycle}")
        return
    try:
        text = resolved.read_text()
    except OSError as exc:
        where = f" (extended by {chain[-1]})" if chain else ""
        errors.problems.append(Problem(str(path), None, "", f"cannot read config{where}: {exc.strerror or exc}"))
        return
    source = _Source(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        errors.problems.append(Problem(str(path), int(line.group(1)) if line else None, "", f"not valid TOML: {exc}"))
        return
    raw.sources.append(source)

    extend = data.get("extend")
    if extend is not None:
        if isinstance(extend, str):
            _read(resolved.parent / extend, raw, errors, (*chain, resolved))
        else:
            errors.add(source, (), "extend", f"expected a string (a file path), got {show(extend)}")
    _merge(data, source, raw, errors)


def _merge(data: dict[str, Any], source: _Source, raw: _Raw, errors: _Collector) -> None:
    for key in data:
        if key not in _TOP_KEYS:
            errors.add(source, (), key, f'unknown key "{key}"{suggest(key, _TOP_KEYS)}; known keys: {", ".join(_TOP_KEYS)}')
    version = data.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION or isinstance(version, bool):
        errors.add(source, (), "version", f"expected {CONFIG_VERSION}, got {show(version)}")

    engine = _table(data, "engine", (), source, errors)
    for key, value in engine.items():
        raw.engine[key] = value
        raw.engine_from[key] = source

    load = _table(data, "load", (), source, errors)
    for key in load:
        if key not in _LOAD_KEYS:
            errors.add(source, ("load",), key, f'unknown key "{key}"{suggest(key, _LOAD_KEYS)}; known keys: {", ".join(_LOAD_KEYS)}')
    for key, target in (("enable", raw.enable), ("disable", raw.disable), ("required", raw.required)):
        for name in _strings(load, key, ("load",), source, errors):
            target.setdefault(name, source)
    for ref in _strings(load, "modules", ("load",), source, errors):
        raw.modules.append((ref, source))

    slots = _table(data, "slots", (), source, errors)
    for slot, name in slots.items():
        if slot not in SLOTS:
            errors.add(source, ("slots",), slot, f'unknown slot "{slot}"{suggest(slot, SLOTS)}; slots: {", ".join(SLOTS)}')
        elif not isinstance(name, str):
            errors.add(source, ("slots",), slot, f"expected a plugin name (a string), got {show(name)}")
        else:
            raw.slots[slot] = (name, source)

    plugins = _table(data, "plugins", (), source, errors)
    for name, table in plugins.items():
        if not isinstance(table, dict):
            errors.add(source, ("plugins",), name, f"expected a table, got {show(table)}")
            continue
        raw.table_from.setdefault(name, source)
        merged = raw.plugins.setdefault(name, {})
        for key, value in table.items():
            merged[key] = value
            raw.plugins_from[(name, key)] = source


def _table(data: dict[str, Any], key: str, where: tuple[str, ...], source: _Source, errors: _Collector) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        errors.add(source, where, key, f"expected a table, got {show(value)}")
        return {}
    return value


def _strings(table: dict[str, Any], key: str, where: tuple[str, ...], source: _Source, errors: _Collector) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.add(source, where, key, f"expected a list of strings, got {show(value)}")
        return []
    return value


# --------------------------------------------------------------------------- validation


def load_config(path: str | Path, catalog: Catalog | None = None) -> Config:
    """Read, merge and validate a plugin set; raise ``ConfigError`` listing every problem."""
    errors = _Collector()
    raw = _Raw()
    _read(Path(path), raw, errors, ())
    if errors.problems and not raw.sources:
        raise ConfigError(errors.problems)
    return _validate(raw, catalog if catalog is not None else Catalog.discover(), errors)


def parse_config(text: str, catalog: Catalog | None = None, name: str = "<config>") -> Config:
    """Validate a plugin set given as text (``extend`` is relative to the working directory)."""
    errors = _Collector()
    raw = _Raw()
    source = _Source(Path(name), text)
    source.name = name
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(name, None, "", f"not valid TOML: {exc}")]) from exc
    raw.sources.append(source)
    if isinstance(data.get("extend"), str):
        _read(Path(data["extend"]), raw, errors, ())
    _merge(data, source, raw, errors)
    return _validate(raw, catalog if catalog is not None else Catalog.discover(), errors)


def _validate(raw: _Raw, catalog: Catalog, errors: _Collector) -> Config:
    for problem in catalog.problems:
        errors.add(None, (), None, problem)
    module_names = []
    for ref, source in raw.modules:
        try:
            module_names.append(catalog.add_module(ref, source.path.parent if source.path else Path.cwd()))
        except PluginLoadError as exc:
            errors.add(source, ("load",), "modules", str(exc))

    engine = decode_dataclass(
        EngineSettings, raw.engine, ("engine",),
        lambda where, key, msg: errors.add(raw.engine_from.get(key or "", raw.sources[-1]), where, key, msg),
    )  # fmt: skip

    def known(name: str, source: _Source, where: tuple[str, ...], key: str | None) -> bool:
        if name in catalog.entries:
            return True
        errors.add(source, where, key, f'unknown plugin "{name}"{suggest(name, catalog.entries)}; plugins: {", ".join(catalog.names())}')
        return False

    for key, names in (("enable", raw.enable), ("disable", raw.disable), ("required", raw.required)):
        for name, source in names.items():
            known(name, source, ("load",), key)
    enabled = [n for n in (*raw.enable, *module_names) if n in catalog.entries and n not in raw.disable]
    enabled = list(dict.fromkeys(enabled))
    for name, source in raw.required.items():
        if name in catalog.entries and name not in enabled:
            why = "it is disabled" if name in raw.disable else "it is not enabled"
            errors.add(source, ("load",), "required", f'required plugin "{name}" will not start: {why}')

    plugins: dict[str, Plugin] = {}
    for name in enabled:
        try:
            plugins[name] = catalog.entries[name].load()
        except PluginLoadError as exc:
            errors.add(raw.enable.get(name), ("load",), "enable", str(exc))

    configs: dict[str, Any] = {}
    for name, table in raw.plugins.items():
        if name not in catalog.entries:
            known(name, raw.table_from[name], ("plugins", name), None)
            continue
        if name not in enabled:
            errors.add(raw.table_from[name], ("plugins", name), None, f'table for plugin "{name}", which is not enabled')
            continue
    for name, plugin in plugins.items():
        table = raw.plugins.get(name, {})
        configs[name] = decode_dataclass(
            plugin.config, table, ("plugins", name),
            lambda where, key, msg, n=name: errors.add(  # type: ignore[misc]
                raw.plugins_from.get((n, (key or "").split("[")[0].split(".")[0]), raw.table_from.get(n)), where, key, msg
            ),
        )  # fmt: skip

    slots, idle = _choose_providers(raw, plugins, errors)
    order = _start_order(plugins, slots, raw, errors)

    if errors.problems:
        raise ConfigError(errors.problems)
    return Config(
        files=tuple(s.name or "" for s in raw.sources),
        engine=engine,
        plugins=tuple(
            PluginEntry(plugins[n], configs[n], catalog.entries[n].source, n in raw.required) for n in order
        ),
        slots=slots,
        idle=idle,
        disabled=tuple(raw.disable),
    )


def _choose_providers(raw: _Raw, plugins: dict[str, Plugin], errors: _Collector) -> tuple[dict[str, str], dict[str, str]]:
    """Decide which enabled plugin fills each slot; the others that could are idle."""
    candidates: dict[str, list[str]] = {}
    for name, plugin in plugins.items():
        if plugin.slot is not None:
            candidates.setdefault(plugin.slot, []).append(name)
    slots: dict[str, str] = {}
    for slot, (name, source) in raw.slots.items():
        if name in plugins and plugins[name].slot == slot:
            slots[slot] = name
        elif name in plugins:
            fills = f'fills slot "{plugins[name].slot}"' if plugins[name].slot else "fills no slot"
            errors.add(source, ("slots",), slot, f'plugin "{name}" {fills}, not "{slot}"')
        else:
            can = ", ".join(candidates.get(slot, [])) or "none enabled"
            errors.add(source, ("slots",), slot, f'plugin "{name}" is not enabled (enabled providers of "{slot}": {can})')
    for slot, names in candidates.items():
        if slot in slots or slot in raw.slots:
            continue
        if len(names) == 1:
            slots[slot] = names[0]
        else:
            source = raw.sources[-1]
            errors.add(source, ("slots",), slot, f'several enabled plugins fill slot "{slot}" ({", ".join(names)}): choose one in [slots]')
    idle = {
        name: f'slot "{plugin.slot}" is filled by "{slots[plugin.slot]}"'
        for name, plugin in plugins.items()
        if plugin.slot in slots and slots[plugin.slot] != name
    }
    return slots, idle


def _start_order(plugins: dict[str, Plugin], slots: dict[str, str], raw: _Raw, errors: _Collector) -> list[str]:
    """Order active plugins so every slot's provider starts before the plugins needing it."""
    active = [n for n, p in plugins.items() if p.slot is None or slots.get(p.slot) == n]
    deps: dict[str, list[str]] = {}
    for name in active:
        plugin = plugins[name]
        deps[name] = []
        for slot in plugin.requires:
            if slot in slots:
                deps[name].append(slots[slot])
            else:
                source = raw.enable.get(name, raw.sources[-1])
                errors.add(source, ("load",), "enable", f'plugin "{name}" requires slot "{slot}", which no enabled plugin fills')
        deps[name] += [slots[s] for s in plugin.uses if s in slots]

    order: list[str] = []
    state: dict[str, Literal["visiting", "done"]] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name) :] + [name]
            errors.add(raw.sources[-1], ("load",), "enable", "dependency cycle: " + " -> ".join(cycle))
            return
        state[name] = "visiting"
        for dep in deps.get(name, []):
            visit(dep, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in active:
        visit(name, [])
    return order

