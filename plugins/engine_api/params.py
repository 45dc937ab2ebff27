"""Decoding Docker's query parameter conventions: filters, times, and signals of time."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

from shoal.errors import InvalidArgument

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def normalize_filters(raw: Any, name: str = "filters") -> dict[str, list[str]]:
    """Docker's filters in either encoding (``{"k": ["v"]}`` or ``{"k": {"v": true}}``) as lists."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidArgument(f"invalid {name}: expected a JSON object mapping names to value lists")
    out: dict[str, list[str]] = {}
    for key, values in raw.items():
        if isinstance(values, list) and all(isinstance(v, str) for v in values):
            out[key] = list(values)
        elif isinstance(values, dict):
            out[key] = [v for v, on in values.items() if on]
        elif isinstance(values, str):
            out[key] = [values]
        else:
            raise InvalidArgument(f"invalid {name}: the values of {key!r} must be a list of strings")
    return out


def parse_time(value: str, name: str, now: float | None = None) -> float:
    """A Docker time argument as Unix seconds.

    Accepts Unix seconds with an optional fraction ("1700000000.123456789"), RFC 3339
    ("2024-01-02T03:04:05Z") and Go durations meaning "that long ago" ("10m", "1h30m").
    """
    text = value.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION_PART.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
        return (time.time() if now is None else now) - seconds
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"invalid time for {name!r}: {value!r}; expected Unix seconds, RFC 3339 or a duration like 10m"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def rfc3339_nano(seconds: float | None = None) -> str:
    """A time as Docker writes it: RFC 3339 in UTC with nanoseconds."""
    ns = time.time_ns() if seconds is None else int(seconds * 1e9)
    whole, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"
