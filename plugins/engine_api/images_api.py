"""Image endpoints over the ``images`` slot: import, list, inspect, tag, remove."""

from __future__ import annotations

import json
import shlex
from datetime import datetime
from fnmatch import fnmatch
from typing import TYPE_CHECKING, Any

from shoal.errors import InvalidArgument, NotFound

from .http import HttpError, Request, Response
from .params import normalize_filters
from .routes import RouteTable

if TYPE_CHECKING:
    from shoal.slots import ImageRecord

    from .app import Api

_DEFAULT_PREFIXES = ("docker.io/library/", "docker.io/")


def register(routes: RouteTable, api: Api) -> None:
    """Add the image endpoints."""
    i = ImageEndpoints(api)
    routes.add("POST", "/images/create", i.create)
    routes.add("GET", "/images/json", i.list)
    routes.add("GET", "/images/{name:path}/json", i.inspect)
    routes.add("POST", "/images/{name:path}/tag", i.tag)
    routes.add("DELETE", "/images/{name:path}", i.remove)


def familiar(reference: str) -> str:
    """A normalised reference as Docker shows it ("docker.io/library/busybox:1" -> "busybox:1")."""
    for prefix in _DEFAULT_PREFIXES:
        if reference.startswith(prefix):
            return reference[len(prefix) :]
    return reference


def _unix_time(created: str) -> int:
    try:
        return int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _tags_and_digests(image: ImageRecord) -> tuple[list[str], list[str]]:
    tags = [familiar(n) for n in image.names if "@" not in n]
    digests = [familiar(n) for n in image.names if "@" in n]
    if image.digest:
        digests += [f"{familiar(n).rsplit(':', 1)[0]}@{image.digest}" for n in image.names if "@" not in n]
    return tags, list(dict.fromkeys(digests))


def image_summary(image: ImageRecord) -> dict[str, Any]:
    """Docker's ``ImageSummary`` of a stored image."""
    tags, digests = _tags_and_digests(image)
    labels = (image.config.get("config") or {}).get("Labels") or {}
    return {
        "Id": image.id,
        "ParentId": "",
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": _unix_time(image.created),
        "Size": image.size,
        "SharedSize": -1,
        "Labels": labels,
        "Containers": -1,
    }


def image_inspect(image: ImageRecord) -> dict[str, Any]:
    """Docker's ``ImageInspect`` of a stored image."""
    tags, digests = _tags_and_digests(image)
    config = image.config
    history = config.get("history") or []
    return {
        "Id": image.id,
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": history[-1].get("comment", "") if history else "",
        "Created": image.created,
        "DockerVersion": "",
        "Author": config.get("author", ""),
        "Config": config.get("config") or {},
        "Architecture": config.get("architecture", ""),
        "Variant": config.get("variant", ""),
        "Os": config.get("os", "linux"),
        "Size": image.size,
        "GraphDriver": {"Name": "", "Data": None},
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
        "Metadata": {"LastTagTime": ""},
    }


def _json_or_shell(args: str) -> list[str]:
    """A Dockerfile instruction's arguments: exec form (JSON array) or shell form."""
    text = args.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", text]


def _pairs(args: str, what: str) -> dict[str, str]:
    words = shlex.split(args)
    if len(words) == 2 and "=" not in words[0]:
        return {words[0]: words[1]}  # the old "ENV KEY value" form
    out = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid {what} change {args!r}: expected KEY=value")
        out[key] = value
    return out


def apply_changes(changes: list[str]) -> dict[str, Any]:
    """Image config fields from ``docker import --change`` instructions."""
    config: dict[str, Any] = {}
    for change in changes:
        instruction, _, args = change.strip().partition(" ")
        keyword = instruction.upper()
        if keyword == "CMD":
            config["Cmd"] = _json_or_shell(args)
        elif keyword == "ENTRYPOINT":
            config["Entrypoint"] = _json_or_shell(args)
        elif keyword == "ENV":
            env = dict(e.split("=", 1) for e in config.get("Env", []))
            env.update(_pairs(args, "ENV"))
            config["Env"] = [f"{k}={v}" for k, v in env.items()]
        elif keyword == "LABEL":
            config.setdefault("Labels", {}).update(_pairs(args, "LABEL"))
        elif keyword == "WORKDIR":
            config["WorkingDir"] = args.strip()
        elif keyword == "USER":
            config["User"] = args.strip()
        elif keyword == "STOPSIGNAL":
            config["StopSignal"] = args.strip()
        elif keyword == "EXPOSE":
            for port in args.split():
                config.setdefault("ExposedPorts", {})[port if "/" in port else f"{port}/tcp"] = {}
        elif keyword == "VOLUME":
            for path in _json_or_shell(args) if args.strip().startswith("[") else args.split():
                config.setdefault("Volumes", {})[path] = {}
        else:
            raise InvalidArgument(f"{instruction} is not a valid change command")
    return config


class ImageEndpoints:
    """The handlers."""

    def __init__(self, api: Api) -> None:
        self.api = api

    @property
    def store(self) -> Any:
        if self.api.images is None:
            raise HttpError(501, "this engine has no image store (no plugin fills the images slot)")
        return self.api.images

    async def create(self, request: Request) -> Response:
        if request.arg("fromImage"):
            raise HttpError(
                501,
                f"pulling images is not available in this engine yet (asked for {request.arg('fromImage')!r}); "
                "import a root filesystem instead (docker import, POST /images/create?fromSrc=-)",
            )
        source = request.arg("fromSrc")
        if not source:
            raise InvalidArgument("either fromImage or fromSrc is required")
        if source != "-":
            raise HttpError(501, f"importing from a URL is not supported ({source!r}); send the tar as the body with fromSrc=-")
        repo, tag = request.arg("repo") or "", request.arg("tag") or ""
        if tag and not repo:
            raise InvalidArgument("a tag needs a repo")
        reference = None
        if repo:
            last = repo.rsplit("/", 1)[-1]
            reference = f"{repo}:{tag}" if tag else repo if (":" in last or "@" in last) else f"{repo}:latest"
        config = apply_changes(request.query.get("changes", []))
        image = await self.store.import_rootfs(request.chunks(), reference, config, request.arg("message") or "")
        return Response(200, json.dumps({"status": image.id}).encode() + b"\r\n", "application/json")

    async def list(self, request: Request) -> Response:
        filters = normalize_filters(request.json_arg("filters"))
        unknown = set(filters) - {"reference", "dangling", "label"}
        if unknown:
            raise InvalidArgument(f"invalid filter {sorted(unknown)[0]!r}")
        if self.api.images is None:
            return Response.json([])  # no store: no images
        images = [image_summary(i) for i in await self.store.list()]
        for pattern in filters.get("reference", []):
            images = [i for i in images if any(_reference_matches(t, pattern) for t in i["RepoTags"])]
        for dangling in filters.get("dangling", []):
            want = dangling.lower() in ("1", "true")
            images = [i for i in images if (not i["RepoTags"]) == want]
        for label in filters.get("label", []):
            key, sep, value = label.partition("=")
            images = [i for i in images if key in i["Labels"] and (not sep or i["Labels"][key] == value)]
        return Response.json(images)

    async def inspect(self, request: Request) -> Response:
        if self.api.images is None:
            raise NotFound(f"No such image: {request.params['name']}")
        return Response.json(image_inspect(await self.store.get(request.params["name"])))

    async def tag(self, request: Request) -> Response:
        repo, tag = request.arg("repo") or "", request.arg("tag") or "latest"
        if not repo:
            raise InvalidArgument("query parameter 'repo' is required")
        await self.store.tag(request.params["name"], f"{repo}:{tag}")
        return Response.empty(201)

    async def remove(self, request: Request) -> Response:
        if self.api.images is None:
            raise NotFound(f"No such image: {request.params['name']}")
        in_use = {c["ImageID"]: c["Id"] for c in await self.api.containers.list(all=True) if c.get("ImageID")}
        items = await self.store.remove(request.params["name"], force=request.flag("force"), in_use=in_use)
        return Response.json(items)


def _reference_matches(tag: str, pattern: str) -> bool:
    if ":" not in pattern.rsplit("/", 1)[-1]:
        return fnmatch(tag.rsplit(":", 1)[0], pattern)
    return fnmatch(tag, pattern)
