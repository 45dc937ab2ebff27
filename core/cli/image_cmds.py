"""Image verbs: ``images``, ``rmi``, ``tag`` and ``import``."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from .client import APIError, quote_id
from .common import Parser, client, command, for_each, print_error
from .container_cmds import parse_filters
from .listing import IMAGE_COLUMNS, IMAGE_HEADERS, image_rows, print_rows

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


def show_progress(messages: Any, tty: bool | None = None, out: Any = None) -> None:
    """Print a JSON-lines progress stream as Docker does; a stream error becomes an ``APIError``.

    On a terminal each layer keeps one line, redrawn in place with its bar; otherwise
    every status is printed once (transfer updates are left out).
    """
    out = out or sys.stdout
    tty = out.isatty() if tty is None else tty
    lines: dict[str, int] = {}  # layer id -> its line, counted from the first one
    for message in messages:
        if message.get("errorDetail") or message.get("error"):
            detail = message.get("errorDetail") or {}
            raise APIError(detail.get("code") or 500, detail.get("message") or message.get("error"))
        status, ident = message.get("status"), message.get("id")
        if not status:
            continue
        text = f"{ident}: {status}" if ident else status
        if not ident or not tty:
            if not (message.get("progressDetail") or {}).get("total") or not ident:
                out.write(text + "\n")
            out.flush()
            if not ident:
                lines.clear()
            continue
        if message.get("progress"):
            text += " " + message["progress"]
        if ident not in lines:
            lines[ident] = len(lines)
            out.write(text + "\n")
        else:
            up = len(lines) - lines[ident]
            out.write(f"\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r")
        out.flush()


def drain_progress(messages: Any) -> None:
    """Read a progress stream without printing it; its error becomes an ``APIError``."""
    for message in messages:
        if message.get("errorDetail") or message.get("error"):
            detail = message.get("errorDetail") or {}
            raise APIError(detail.get("code") or 500, detail.get("message") or message.get("error"))


def _report_transfer(messages: Any, quiet: bool, name: str) -> None:
    """Show a pull's or push's progress, or with ``quiet`` only ``name`` once it is done."""
    if quiet:
        drain_progress(messages)
        print(name)
    else:
        show_progress(messages)


def _registry_auth(reference: str) -> dict[str, str]:
    """The ``X-Registry-Auth`` header for the registry of ``reference`` from the docker config."""
    from shoal.plugins.images.credentials import lookup, to_header
    from shoal.plugins.images.reference import parse_reference

    try:
        domain = parse_reference(reference).domain
    except Exception:
        return {}
    credentials = lookup(domain)
    return {"X-Registry-Auth": to_header(credentials, domain)} if credentials else {}


@command("pull")
def pull(argv: list[str]) -> int:
    """``shoal pull [-q] [--platform OS/ARCH] NAME[:TAG|@DIGEST]``."""
    parser = Parser("shoal pull", "Download an image from a registry.")
    parser.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    parser.add_argument("--platform", help="pull this platform's image from a multi-platform one (os/arch[/variant])")
    parser.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    args = parser.parse_args(argv)
    name, tag = args.name, ""
    if "@" not in name:
        name, tag = split_reference(name)
        if not tag:
            if not args.quiet:  # as docker pull -q: the reference pulled is the only output
                print("Using default tag: latest", flush=True)
            tag = "latest"
    query = {"fromImage": name, "tag": tag or None, "platform": args.platform}
    pulled = args.name if "@" in args.name or ":" in args.name.rsplit("/", 1)[-1] else f"{args.name}:latest"
    with client().open("POST", "/images/create", query, headers=_registry_auth(args.name)) as response:
        _report_transfer(response.iter_json(), args.quiet, pulled)
    return 0


@command("push")
def push(argv: list[str]) -> int:
    """``shoal push [-q] NAME[:TAG]``."""
    parser = Parser("shoal push", "Upload an image to a registry.")
    parser.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    parser.add_argument("name", metavar="NAME[:TAG]")
    args = parser.parse_args(argv)
    name, tag = split_reference(args.name)
    with client().open("POST", f"/images/{quote_id(name)}/push", {"tag": tag or None}, headers=_registry_auth(args.name)) as response:
        _report_transfer(response.iter_json(), args.quiet, args.name)
    return 0


@command("save")
def save(argv: list[str]) -> int:
    """``shoal save [-o FILE] IMAGE...``: a ``docker save`` tar on stdout or in FILE."""
    parser = Parser("shoal save", "Save one or more images to a tar archive (streamed to STDOUT by default).")
    parser.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    args = parser.parse_args(argv)
    if not args.output and sys.stdout.isatty():
        print_error("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        return 1
    from urllib.parse import urlencode

    with client().open("GET", "/images/get?" + urlencode([("names", n) for n in args.images])) as response:
        target = open(args.output + ".tmp", "wb") if args.output else sys.stdout.buffer
        try:
            for chunk in response.iter_chunks():
                target.write(chunk)
        finally:
            if args.output:
                target.close()
        if args.output:
            os.replace(args.output + ".tmp", args.output)
    return 0


@command("load")
def load(argv: list[str]) -> int:
    """``shoal load [-i FILE] [-q]``: load a ``docker save`` tar from FILE or stdin."""
    parser = Parser("shoal load", "Load an image from a tar archive or STDIN.")
    parser.add_argument("-i", "--input", help="read from tar archive file, instead of STDIN")
    parser.add_argument("-q", "--quiet", action="store_true", help="suppress the load output")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        try:
            source = stack.enter_context(open(args.input, "rb")) if args.input else sys.stdin.buffer
        except OSError as exc:
            print_error(f"open {args.input}: {(exc.strerror or str(exc)).lower()}")
            return 1
        with client().open("POST", "/images/load", {"quiet": args.quiet or None}, body_writer=functools.partial(copy_file, source),
                           content_type="application/x-tar") as response:  # fmt: skip
            for message in response.iter_json():
                if message.get("error"):
                    raise APIError(500, message["error"])
                if message.get("stream") and not args.quiet:
                    sys.stdout.write(message["stream"])
    return 0


@command("login")
def login(argv: list[str]) -> int:
    """``shoal login [-u USER] [-p PASSWORD | --password-stdin] [SERVER]``."""
    from shoal.plugins.images.credentials import Credentials, store

    parser = Parser("shoal login", "Log in to a registry (credentials go to ~/.docker/config.json).")
    parser.add_argument("-u", "--username", help="username")
    parser.add_argument("-p", "--password", help="password")
    parser.add_argument("--password-stdin", action="store_true", help="take the password from stdin")
    parser.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")
    args = parser.parse_args(argv)
    username = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.read().rstrip("\n")
    elif args.password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
        password = args.password
    else:
        import getpass

        password = getpass.getpass("Password: ")
    server = args.server.split("://", 1)[-1].split("/", 1)[0]
    answer = client().post("/auth", body={"username": username, "password": password, "serveraddress": server})
    path = store(server, Credentials(username, password, (answer or {}).get("IdentityToken", "")))
    print(f"WARNING! Your password will be stored unencrypted in {path}.", file=sys.stderr)
    print((answer or {}).get("Status") or "Login Succeeded")
    return 0


@command("logout")
def logout(argv: list[str]) -> int:
    """``shoal logout [SERVER]``."""
    from shoal.plugins.images.credentials import forget

    parser = Parser("shoal logout", "Log out from a registry.")
    parser.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")
    args = parser.parse_args(argv)
    server = args.server.split("://", 1)[-1].split("/", 1)[0]
    if forget(server):
        print(f"Removing login credentials for {server}")
    else:
        print(f"Not logged in to {server}")
    return 0


@command("history")
def history(argv: list[str]) -> int:
    """``shoal image history [-q] [--no-trunc] [-H] IMAGE``."""
    parser = Parser("shoal image history", "Show the history of an image.")
    parser.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    parser.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    parser.add_argument("-H", "--human", action="store_true", default=True, help="print sizes and dates in human readable format")
    parser.add_argument("image", metavar="IMAGE")
    args = parser.parse_args(argv)
    from .units import human_duration, human_size

    steps = client().get(f"/images/{quote_id(args.image)}/history") or []
    now = time.time()
    if args.quiet:
        for step in steps:
            print(step["Id"] if args.no_trunc else step["Id"].removeprefix("sha256:")[:12])
        return 0
    print(f"{'IMAGE':<14} {'CREATED':<15} {'CREATED BY':<45} {'SIZE':<9} COMMENT")
    for step in steps:
        ident = step["Id"] if args.no_trunc or step["Id"] == "<missing>" else step["Id"].removeprefix("sha256:")[:12]
        created = human_duration(now - step["Created"]) + " ago" if step.get("Created") else "N/A"
        by = step.get("CreatedBy", "")
        if not args.no_trunc and len(by) > 45:
            by = by[:44] + "…"
        print(f"{ident:<14} {created:<15} {by:<45} {human_size(step.get('Size', 0)):<9} {step.get('Comment', '')}")
    return 0


@command("image prune")
def prune(argv: list[str]) -> int:
    """``shoal image prune [-a] [-f]``."""
    parser = Parser("shoal image prune", "Remove unused images.")
    parser.add_argument("-a", "--all", action="store_true", help="remove all unused images, not just dangling ones")
    parser.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    args = parser.parse_args(argv)
    if not args.force:
        what = "all images without at least one container associated to them" if args.all else "all dangling images"
        if input(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ").strip().lower() not in ("y", "yes"):
            return 0
    filters = {"dangling": ["false"]} if args.all else {}
    answer = client().post("/images/prune", {"filters": json.dumps(filters) if filters else None}) or {}
    deleted = answer.get("ImagesDeleted") or []
    if deleted:
        print("Deleted Images:")
        for item in deleted:
            for key in ("Untagged", "Deleted"):
                if item.get(key):
                    print(f"{key.lower()}: {item[key]}")
        print()
    from .units import human_size

    print(f"Total reclaimed space: {human_size(answer.get('SpaceReclaimed', 0))}")
    return 0


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
    print_rows(rows, args.format, IMAGE_COLUMNS, IMAGE_HEADERS)
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


_IMAGE_VERBS = {"ls": images, "list": images, "rm": rmi, "remove": rmi, "tag": tag, "pull": pull, "push": push, "save": save,
                "load": load, "history": history, "prune": prune, "import": import_}  # fmt: skip


@command("image")
def image(argv: list[str]) -> int:
    """``shoal image COMMAND``: inspect, history, prune, ls, rm, tag, pull, push, save, load, import."""
    if not argv or argv[0] in ("-h", "--help"):
        print("Usage: shoal image COMMAND\n\nCommands: inspect, " + ", ".join(sorted(set(_IMAGE_VERBS))))
        return 0 if argv else 1
    verb, rest = argv[0], argv[1:]
    if verb == "inspect":
        from .container_cmds import inspect

        return inspect(["--type", "image", *rest])
    if verb not in _IMAGE_VERBS:
        print_error(f"shoal image: unknown command {verb!r}")
        return 1
    return _IMAGE_VERBS[verb](rest)
