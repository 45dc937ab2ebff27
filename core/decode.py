"""Strict decoding of TOML tables into frozen config dataclasses.

Every problem is collected, not raised at the first one, so a config with three mistakes is
reported with three lines. Paths are written the way a TOML user reads them:
``[plugins.cgroups].driver``, ``[plugins.x].items[2]``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union

#: Reports one problem: (path within the file, key or None, message).
Report = Callable[[tuple[str, ...], "str | None", str], None]


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    """' (did you mean "x"?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def show(value: Any) -> str:
    """A value as it would be written in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def describe_type(tp: Any) -> str:
    """A type named for a TOML user: 'a string', 'a list of integers', 'one of "a", "b"'."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str or tp is Path:
        return "a string"
    if tp is Any:
        return "any value"
    if origin is Literal:
        return "one of " + ", ".join(show(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_plural(describe_type(args[0]))}"
    if origin is dict:
        return f"a table of {_plural(describe_type(args[1]))}"
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def _plural(description: str) -> str:
    for article in ("an ", "a "):
        if description.startswith(article):
            noun = description[len(article) :]
            return noun + ("es" if noun.endswith("h") else "s")
    return description


def field_doc(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("doc", ""))


def decode_dataclass(cls: type, table: dict[str, Any], where: tuple[str, ...], report: Report) -> Any:
    """Build ``cls`` from ``table``; report every problem and return None if there were any."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    ok = True
    for key, raw in table.items():
        if key not in fields:
            known = ", ".join(f'"{k}"' for k in fields) or "none"
            report(where, key, f'unknown key "{key}"{suggest(key, fields)}; known keys: {known}')
            ok = False
            continue
        value, good = _convert(hints[key], raw, where, key, report)
        ok &= good
        values[key] = value
    for name, f in fields.items():
        if name in table:
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            report(where, None, f'missing required key "{name}" ({describe_type(hints[name])})')
            ok = False
    return cls(**values) if ok else None


def _convert(tp: Any, raw: Any, where: tuple[str, ...], key: str, report: Report) -> tuple[Any, bool]:
    """Check ``raw`` against ``tp`` and convert it (lists to tuples, strings to paths)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    def bad() -> tuple[Any, bool]:
        report(where, key, f"expected {describe_type(tp)}, got {show(raw)}")
        return None, False

    if tp is Any:
        return raw, True
    if origin in (Union, types.UnionType):
        arms = [a for a in args if a is not type(None)]
        for arm in arms:
            value, good = _convert(arm, raw, where, key, lambda *_: None)
            if good:
                return value, True
        return bad()
    if tp is bool:
        return (raw, True) if isinstance(raw, bool) else bad()
    if tp is int:
        return (raw, True) if isinstance(raw, int) and not isinstance(raw, bool) else bad()
    if tp is float:
        return (float(raw), True) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else bad()
    if tp is str:
        return (raw, True) if isinstance(raw, str) else bad()
    if tp is Path:
        return (Path(raw), True) if isinstance(raw, str) else bad()
    if origin is Literal:
        return (raw, True) if raw in args and type(raw) in {type(a) for a in args} else bad()
    if origin in (list, tuple):
        if not isinstance(raw, list):
            return bad()
        items, ok = [], True
        for i, item in enumerate(raw):
            value, good = _convert(args[0], item, where, f"{key}[{i}]", report)
            items.append(value)
            ok &= good
        return (tuple(items) if origin is tuple else items), ok
    if origin is dict:
        if not isinstance(raw, dict):
            return bad()
        out, ok = {}, True
        for k, item in raw.items():
            value, good = _convert(args[1], item, where, f"{key}.{k}", report)
            out[k] = value
            ok &= good
        return out, ok
    if dataclasses.is_dataclass(tp):
        if not isinstance(raw, dict):
            return bad()
        value = decode_dataclass(tp, raw, (*where, key), report)  # type: ignore[arg-type]
        return value, value is not None
    raise TypeError(f"config field type {tp!r} is not supported")


def encode_dataclass(obj: Any) -> dict[str, Any]:
    """The TOML table that decodes back to ``obj``."""
    return {f.name: _encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return encode_dataclass(value)
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
