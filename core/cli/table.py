"""Plain aligned tables, as Docker prints them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    rows = [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    for line in (tuple(headers), *rows):
        print("   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
