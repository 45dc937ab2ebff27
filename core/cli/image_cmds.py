"""Image verbs: ``images``, ``rmi``, ``tag`` and ``import``."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from .client import APIError, quote_id
from .common import Parser, client, command, for_each, print_error
from .container_cmds import parse_filters
from .listing import IMAGE_COLUMNS, IMAGE_HEADERS, image_rows, print_rows
from .template import TemplateError

_COPY_SIZE = 1 << 20


def split_reference(reference: str) -> tuple[str, str]:
    """``name[:tag]`` as (repository, tag); a registry port is not taken for a tag."""
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, ""
    return name, tag


def tar_directory(path: str, write: Callable[[bytes], None]) -> None:
    """Stream ``path``'s tree as an uncompressed tar (entries relative to it, owners kept)."""
    import tarfile

    class Sink:
        def write(self, data: bytes) -> int:
            write(bytes(data))
            return len(data)

    with tarfile.open(fileobj=Sink(), mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
        for entry in sorted(os.listdir(path)):
            archive.add(os.path.join(path, entry), arcname=entry)


def copy_file(source: Any, write: Callable[[bytes], None]) -> None:
    """Stream an open binary file."""
    while data := source.read(_COPY_SIZE):
        write(data)


def show_progress(messages: Any) -> None:
    """Print a JSON-lines progress stream's statuses; a stream error becomes an ``APIError``."""
    for message in messages:
        if message.get("errorDetail") or message.get("error"):
            detail = message.get("errorDetail") or {}
            raise APIError(detail.get("code") or 500, detail.get("message") or message.get("error"))
        if message.get("status"):
            print(message["status"], flush=True)


@command("import")
def import_(argv: list[str]) -> int:
    """``shoal import [-m MESSAGE] [-c CHANGE] TAR|DIR|- [REPOSITORY[:TAG]]``."""
    parser = Parser("shoal import", "Import the contents from a tarball or a directory to create a filesystem image.")
    parser.add_argument("-m", "--message", help="set commit message for imported image")
    parser.add_argument(
        "-c", "--change", action="append", default=[], help="apply a Dockerfile instruction to the image"
    )
    parser.add_argument("source", metavar="TAR|DIR|-")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    args = parser.parse_args(argv)
    repo, tag = split_reference(args.reference) if args.reference else ("", "")
    query = {"fromSrc": "-", "repo": repo or None, "tag": tag or None, "message": args.message,
             "changes": args.change or None}  # fmt: skip
    api = client()
    with contextlib.ExitStack() as stack:
        if args.source == "-":
            writer = functools.partial(copy_file, sys.stdin.buffer)
        elif os.path.isdir(args.source):
            writer = functools.partial(tar_directory, args.source)
        else:
            try:
                writer = functools.partial(copy_file, stack.enter_context(open(args.source, "rb")))
            except OSError as exc:
                print_error(f"open {args.source}: {(exc.strerror or str(exc)).lower()}")
                return 1
        with api.open(
            "POST", "/images/create", query, body_writer=writer, content_type="application/x-tar"
        ) as response:
            show_progress(response.iter_json())
    return 0


@command("images")
def images(argv: list[str]) -> int:
    """``shoal images [-a] [-q] [--no-trunc] [-f FILTER] [--format FORMAT] [REPOSITORY[:TAG]]``."""
    parser = Parser("shoal images", "List images.")
    parser.add_argument("-a", "--all", action="store_true", help="show all images (default hides intermediate images)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    parser.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    parser.add_argument("-f", "--filter", action="append", default=[], help="filter output based on conditions")
    parser.add_argument("--format", help="format output using a Go-like template ('table ...' for a table)")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    args = parser.parse_args(argv)
    try:
        filters = parse_filters(args.filter + ([f"reference={args.reference}"] if args.reference else []))
    except ValueError as exc:
        parser.error(str(exc))
    summaries = client().get("/images/json", {"all": args.all or None, "filters": filters}) or []
    rows = image_rows(summaries, time.time(), trunc=not args.no_trunc)
    if args.quiet:
        for image_id in dict.fromkeys(row["ID"] for row in rows):
            print(image_id)
        return 0
    try:
        print_rows(rows, args.format, IMAGE_COLUMNS, IMAGE_HEADERS)
    except TemplateError as exc:
        print_error(f"template parsing error: {exc}")
        return 1
    return 0


@command("rmi")
def rmi(argv: list[str]) -> int:
    """``shoal rmi [-f] [--no-prune] IMAGE...``."""
    parser = Parser("shoal rmi", "Remove one or more images.")
    parser.add_argument("-f", "--force", action="store_true", help="force removal of the image")
    parser.add_argument("--no-prune", action="store_true", help="do not delete untagged parents")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    args = parser.parse_args(argv)
    api, query = client(), {"force": args.force or None, "noprune": args.no_prune or None}

    def remove(name: str) -> None:
        for item in api.call("DELETE", f"/images/{quote_id(name)}", query) or ():
            for key in ("Untagged", "Deleted"):
                if item.get(key):
                    print(f"{key}: {item[key]}", flush=True)

    return for_each(args.images, remove, echo=False)


@command("tag")
def tag(argv: list[str]) -> int:
    """``shoal tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]``."""
    parser = Parser("shoal tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.")
    parser.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    parser.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    args = parser.parse_args(argv)
    repo, name = split_reference(args.target)
    client().post(f"/images/{quote_id(args.source)}/tag", {"repo": repo, "tag": name or "latest"})
    return 0
