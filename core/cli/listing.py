"""Rows of ``shoal ps`` and ``shoal images`` from API summaries, formatted as docker prints
them, plus ``--format`` handling (``table`` prefix, aligned columns)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .table import print_table
from .template import render
from .units import human_duration, human_size

PS_COLUMNS = ("ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names")
IMAGE_COLUMNS = ("Repository", "Tag", "ID", "CreatedSince", "Size")
HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
    "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
    "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
}  # fmt: skip
IMAGE_HEADERS = {**HEADERS, "ID": "IMAGE ID"}


def ellipsis(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def short_id(value: str) -> str:
    """The 12-character form of a container or image ID (``sha256:`` dropped)."""
    return value.removeprefix("sha256:")[:12]


def format_ports(ports: Iterable[dict[str, Any]]) -> str:
    """``0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 443/tcp``."""
    seen: list[str] = []
    for port in sorted(ports, key=lambda p: (p.get("PrivatePort", 0), p.get("Type", ""), p.get("IP", ""))):
        target = f"{port.get('PrivatePort')}/{port.get('Type', 'tcp')}"
        if port.get("PublicPort"):
            ip = port.get("IP") or "0.0.0.0"
            ip = f"[{ip}]" if ":" in ip else ip
            text = f"{ip}:{port['PublicPort']}->{target}"
        else:
            text = target
        if text not in seen:
            seen.append(text)
    return ", ".join(seen)


def go_time(timestamp: float) -> str:
    """A Unix time as Go's ``time.Time.String`` prints it in local time."""
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def container_fields(summary: dict[str, Any], now: float, trunc: bool = True) -> dict[str, str]:
    """The ``--format`` fields of one ``GET /containers/json`` entry."""
    command = summary.get("Command") or ""
    image = summary.get("Image") or ""
    if trunc and image.startswith("sha256:"):
        image = short_id(image)
    names = [n.removeprefix("/") for n in summary.get("Names") or ()]
    created = summary.get("Created") or 0
    labels = summary.get("Labels") or {}
    mounts = [m.get("Name") or m.get("Source") or "" for m in summary.get("Mounts") or ()]
    networks = ((summary.get("NetworkSettings") or {}).get("Networks") or {}).keys()
    return {
        "ID": short_id(summary.get("Id", "")) if trunc else summary.get("Id", ""),
        "Image": image,
        "Command": json.dumps(ellipsis(command, 20) if trunc else command, ensure_ascii=False),
        "CreatedAt": go_time(created),
        "RunningFor": f"{human_duration(now - created)} ago",
        "Ports": format_ports(summary.get("Ports") or ()),
        "State": summary.get("State") or "",
        "Status": summary.get("Status") or (summary.get("State") or "").capitalize(),
        "Size": human_size(summary.get("SizeRw") or 0),
        "Names": ",".join(n for n in names if "/" not in n),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Mounts": ",".join(ellipsis(m, 15) if trunc else m for m in mounts),
        "Networks": ",".join(sorted(networks)),
    }


def image_rows(summaries: Iterable[dict[str, Any]], now: float, trunc: bool = True) -> list[dict[str, str]]:
    """The ``--format`` fields of ``GET /images/json`` entries: one row per tag, newest first."""
    rows = []
    for image in sorted(summaries, key=lambda i: i.get("Created", 0), reverse=True):
        tags = [t for t in image.get("RepoTags") or () if t != "<none>:<none>"] or ["<none>:<none>"]
        image_id = image.get("Id", "")
        for tag in tags:
            repository, _, name = tag.rpartition(":")
            if "/" in name:  # a registry port, not a tag
                repository, name = tag, "<none>"
            rows.append({
                "Repository": repository, "Tag": name,
                "ID": short_id(image_id) if trunc else image_id,
                "CreatedSince": f"{human_duration(now - image.get('Created', 0))} ago",
                "CreatedAt": go_time(image.get("Created", 0)),
                "Size": human_size(image.get("Size", 0)),
                "Digest": ",".join(image.get("RepoDigests") or ()) or "<none>",
            })  # fmt: skip
    return rows


def print_rows(
    rows: Sequence[dict[str, str]], fmt: str | None, columns: Sequence[str], headers: dict[str, str]
) -> None:
    """Print rows as the default table, a ``table ...`` template (aligned, with headers), or a
    plain template (one rendered line per row)."""
    if fmt is None or fmt == "table":
        print_table([headers[c] for c in columns], [[row[c] for c in columns] for row in rows])
        return
    if fmt.startswith("table "):
        template = fmt[len("table ") :]
        head = render(template, {k: v for k, v in headers.items()}).split("\t")
        print_table(head, [render(template, row).split("\t") for row in rows])
        return
    for row in rows:
        print(render(fmt, row))
