"""Pure conversions between Docker's human units and numbers, both ways.

Input: memory sizes (``512m``), CPU counts (``1.5``), Go durations (``1h30m``) and the
timestamps ``logs --since`` and ``events --until`` accept. Output: sizes and durations the way
the docker CLI prints them (``7.4MB``, ``1.5GiB``, ``Up 3 seconds``, ``2 minutes ago``).
"""

from __future__ import annotations

import re
from datetime import datetime

from ..humanize import human_duration  # noqa: F401  (re-exported for the commands)

_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kmgtp])?i?b?$", re.IGNORECASE)
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_CPUS = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?$")


def parse_size(value: str) -> int:
    """Bytes in a memory size as Docker reads it: binary multiples, ``b``/``ib`` optional.

    ``"512m"`` -> 536870912, ``"1.5g"``, ``"64k"``, ``"100"`` (bytes). Raises ``ValueError``
    with Docker's wording, ``invalid size: '10XB'``.
    """
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"invalid size: '{value}'")
    number = float(match.group(1)) if match.group(1).count(".") <= 1 else None
    if number is None:
        raise ValueError(f"invalid size: '{value}'")
    return int(number * _BINARY[(match.group(2) or "").lower()])


def parse_memory_swap(value: str) -> int:
    """``--memory-swap``: a size, or ``-1`` for unlimited swap."""
    return -1 if value.strip() == "-1" else parse_size(value)


def parse_cpus(value: str) -> int:
    """``--cpus 1.5`` as Docker's ``NanoCpus`` (1500000000), exactly, without float rounding.

    Raises ``ValueError`` for something that is not a decimal number, or that has more
    precision than a nano-CPU.
    """
    match = _CPUS.match(value.strip())
    if not match or not (match.group(2) or match.group(3)):
        raise ValueError(f"failed to parse {value} as a rational number")
    sign, whole, fraction = match.group(1), match.group(2) or "0", (match.group(3) or "").rstrip("0")
    if len(fraction) > 9:
        raise ValueError("value is too precise")
    nano = int(whole) * 10**9 + int(fraction.ljust(9, "0") or 0)
    return -nano if sign == "-" else nano


def parse_duration(value: str) -> float:
    """Seconds in a Go duration string: ``"1h30m"``, ``"1.5s"``, ``"300ms"``, ``"-2m"``, ``"0"``."""
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f'time: invalid duration "{value}"')
    return sign * total


def parse_timestamp(value: str, now: float) -> str:
    """A ``--since``/``--until`` value as the API's ``seconds.nanoseconds`` string.

    Accepts a Go duration relative to ``now`` (``10m``: ten minutes ago), a Unix timestamp
    (``1700000000`` or ``1700000000.5``) passed through, or an RFC 3339 date or time (without
    a zone it is local time).
    """
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return text
    if "-" not in text[1:] and ":" not in text:
        try:
            seconds = now - parse_duration(text)
        except ValueError:
            pass
        else:
            return _seconds_nanos(seconds)
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"invalid value for timestamp: {value!r}") from None
    return _seconds_nanos(moment.timestamp())


def _seconds_nanos(seconds: float) -> str:
    whole = int(seconds // 1)
    return f"{whole}.{int(round((seconds - whole) * 1e9)):09d}"


def _scaled(size: float, base: float, units: tuple[str, ...], precision: int) -> str:
    index = 0
    while size >= base and index < len(units) - 1:
        size /= base
        index += 1
    return f"{size:.{precision}g}{units[index]}"


def human_size(size: float, precision: int = 3) -> str:
    """Decimal size as in ``docker images`` and the I/O columns of ``stats``: ``7.4MB``, ``124kB``."""
    return _scaled(float(size), 1000.0, _DECIMAL_UNITS, precision)


def bytes_size(size: float) -> str:
    """Binary size as in the memory column of ``docker stats``: ``1.5GiB``, ``812KiB``."""
    return _scaled(float(size), 1024.0, _BINARY_UNITS, 4)


def parse_api_time(value: str | None) -> float | None:
    """Seconds since the epoch of an API time (RFC 3339 with nanoseconds); None for Go's zero time."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.replace("Z", "+00:00")
    # fromisoformat takes at most microseconds: cut the fraction to six digits.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def describe_state(state: dict, now: float) -> str:
    """The ``Status`` text of ``docker ps`` from an inspect-style ``State`` object.

    ``Up 3 seconds``, ``Up 2 minutes (Paused)``, ``Restarting (1) 5 seconds ago``,
    ``Exited (0) 2 minutes ago``, ``Created``, ``Dead``, ``Removal In Progress``.
    """
    started = parse_api_time(state.get("StartedAt"))
    finished = parse_api_time(state.get("FinishedAt"))
    if state.get("Running"):
        if state.get("Paused"):
            return f"Up {human_duration(now - (started or now))} (Paused)"
        if state.get("Restarting"):
            return f"Restarting ({state.get('ExitCode', 0)}) {human_duration(now - (finished or now))} ago"
        return f"Up {human_duration(now - (started or now))}"
    if state.get("Status") == "removing":
        return "Removal In Progress"
    if state.get("Dead") or state.get("Status") == "dead":
        return "Dead"
    if started is None:
        return "Created"
    if finished is None:
        return ""
    return f"Exited ({state.get('ExitCode', 0)}) {human_duration(now - finished)} ago"
