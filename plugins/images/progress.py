"""Docker's JSON-lines progress messages for pull, push and load.

Each message is ``{"status", "id", "progressDetail", "progress"}``; a layer's id is the
first 12 hex digits of its digest. The ``progress`` text is the bar Docker's CLI shows
when it does not draw its own: ``[=====>      ]  12.3MB/45.6MB``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Receives each progress message.
Report = Callable[[dict[str, Any]], None]

_BAR = 50


def short_id(digest: str) -> str:
    """The 12-digit id Docker shows for a layer or image."""
    return digest.removeprefix("sha256:")[:12]


def human_size(size: float) -> str:
    """Docker's decimal sizes: "3.2MB", "512B"."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.3g}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1000
    return f"{size}TB"


def bar(current: int, total: int) -> str:
    """The text bar of a transfer."""
    if total <= 0:
        return human_size(current)
    filled = min(_BAR, _BAR * current // total)
    arrow = ">" if filled < _BAR else "="
    return f"[{'=' * max(filled - 1, 0)}{arrow if filled else ''}{' ' * (_BAR - filled)}] {human_size(current):>8}/{human_size(total)}"


def status(text: str, ident: str = "") -> dict[str, Any]:
    """A plain status line (optionally for one layer)."""
    message: dict[str, Any] = {"status": text}
    if ident:
        message["id"] = ident
        message["progressDetail"] = {}
    return message


def transfer(text: str, ident: str, current: int, total: int) -> dict[str, Any]:
    """A layer's transfer progress ("Downloading", "Pushing", "Extracting")."""
    return {"status": text, "id": ident, "progressDetail": {"current": current, "total": total}, "progress": bar(current, total)}


def error(message: str) -> dict[str, Any]:
    """The last message of a failed stream."""
    return {"errorDetail": {"message": message}, "error": message}


def ignore(message: dict[str, Any]) -> None:
    """A ``Report`` that drops messages."""


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The exception to raise for a failed group of transfers: the first real error in it.

    A group of nothing but cancellations is itself returned (it must propagate as it is).
    """
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    import trio

    real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    return real[0] if real else group
