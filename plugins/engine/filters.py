"""Docker's filters for listing and pruning containers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from shoal.errors import InvalidArgument, NotFound

from .container import Container, parse_time

LIST_FILTERS = ("id", "name", "label", "status", "exited", "ancestor", "before", "since")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def container_matches(c: Container, filters: Mapping[str, list[str]], lookup: Callable[[str], Container]) -> bool:
    """Whether ``c`` passes every filter (values of one filter are alternatives)."""
    for key, values in filters.items():
        if key not in LIST_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if not values:
            continue
        if key == "id" and not any(c.id.startswith(v) for v in values):
            return False
        if key == "name" and not any(re.search(v.lstrip("/"), c.name) for v in values):
            return False
        if key == "label" and not all(label_matches(c.config.get("Labels") or {}, v) for v in values):
            return False
        if key == "status":
            for v in values:
                if v not in STATUSES:
                    raise InvalidArgument(f"invalid filter 'status={v}'")
            if c.state["Status"] not in values:
                return False
        if key == "exited":
            try:
                codes = {int(v) for v in values}
            except ValueError:
                raise InvalidArgument(f"invalid filter 'exited={values[0]}'") from None
            if c.state["Status"] != "exited" or c.state["ExitCode"] not in codes:
                return False
        if key == "ancestor" and not any(v in (c.config.get("Image"), c.record["Image"]) or
                                         c.record["Image"].startswith("sha256:" + v) for v in values):  # fmt: skip
            return False
        if key in ("before", "since"):
            try:
                other = lookup(values[0])
            except NotFound:
                raise InvalidArgument(f"no such container: {values[0]}") from None
            mine, theirs = c.record["Created"], other.record["Created"]
            if (key == "before" and not mine < theirs) or (key == "since" and not mine > theirs):
                return False
    return True


def parse_until(value: str) -> float:
    """An ``until`` filter: Unix time, RFC 3339 time, or a duration ago ("10m", "2h")."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)", value)
    if match:
        return time.time() - float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parse_time(value if value.endswith("Z") else value + "Z")
    except ValueError:
        raise InvalidArgument(f"invalid filter 'until={value}'") from None


def prune_matches(c: Container, filters: Mapping[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "until":
            if not all(parse_time(c.record["Created"]) < parse_until(v) for v in values):
                return False
        elif key == "label":
            if not all(label_matches(c.config.get("Labels") or {}, v) for v in values):
                return False
        elif key == "label!":
            if any(label_matches(c.config.get("Labels") or {}, v) for v in values):
                return False
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return True
