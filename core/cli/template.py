"""The small subset of Go templates that ``--format`` users reach for.

Supported actions: ``{{.}}``, a field path ``{{.State.Pid}}`` (map keys too), and the
functions ``json``, ``upper``, ``lower``, ``title``, ``join LIST "SEP"`` and
``index MAP "KEY"`` applied to a path. Values print the way Go's ``fmt`` prints decoded JSON:
``true``, ``[a b]``, ``map[k:v]``, ``<nil>``, and ``<no value>`` for a missing key.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from typing import Any

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
_MISSING = object()


class TemplateError(ValueError):
    """The template uses syntax outside the supported subset, or is malformed."""


def go_string(value: Any) -> str:
    """``value`` as Go's ``%v`` prints the same decoded JSON."""
    if value is _MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_string(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _lookup(path: str, data: Any) -> Any:
    if path == ".":
        return data
    if not path.startswith("."):
        raise TemplateError(f"unsupported template argument {path!r}")
    value = data
    for name in path[1:].split("."):
        if not isinstance(value, dict):
            raise TemplateError(f"can't evaluate field {name} in {go_string(value)!r}")
        value = value.get(name, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def _evaluate(action: str, data: Any) -> str:
    try:
        words = shlex.split(action)
    except ValueError as exc:
        raise TemplateError(f"malformed action {{{{{action}}}}}: {exc}") from None
    if not words:
        raise TemplateError("empty action {{}}")
    name, args = words[0], words[1:]
    if name.startswith("."):
        if args:
            raise TemplateError(f"unsupported action {{{{{action}}}}}")
        return go_string(_lookup(name, data))
    if name in ("json", "upper", "lower", "title") and len(args) == 1:
        value = _lookup(args[0], data)
        if name == "json":
            return json.dumps(None if value is _MISSING else value, separators=(",", ":"))
        text = go_string(value)
        return text.upper() if name == "upper" else text.lower() if name == "lower" else text.title()
    if name == "join" and len(args) == 2:
        value = _lookup(args[0], data)
        return args[1].join(go_string(v) for v in value) if isinstance(value, list) else go_string(value)
    if name == "index" and len(args) == 2:
        value = _lookup(args[0], data)
        return go_string(value.get(args[1], _MISSING) if isinstance(value, dict) else _MISSING)
    raise TemplateError(f"unsupported action {{{{{action}}}}}")


def render(template: str, data: Any) -> str:
    """Expand ``template`` against ``data``; ``\\t`` and ``\\n`` typed literally become tab and newline."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    out, pos = [], 0
    for match in _ACTION.finditer(template):
        out.append(template[pos : match.start()])
        out.append(_evaluate(match.group(1), data))
        pos = match.end()
    tail = template[pos:]
    if "{{" in tail or "}}" in tail:
        raise TemplateError(f"unclosed action in {template!r}")
    out.append(tail)
    return "".join(out)


def print_documents(documents: list[Any], template: str | None) -> None:
    """``inspect`` output: each document through ``template``, or all as Docker's JSON array."""
    if template is None:
        sys.stdout.write(json.dumps(documents, indent=4, ensure_ascii=False) + "\n")
        return
    for document in documents:
        print(render(template, document))
