"""Image endpoints over the ``images`` slot: import, list, inspect, tag, remove, history,
prune, and, when the store can reach registries (``ImageDistribution``), pull and push
with Docker's JSON-lines progress, ``docker save``/``load`` archives, ``/distribution`` and
``/auth``."""

from __future__ import annotations

import json
import logging
import math
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from fnmatch import fnmatch
from typing import TYPE_CHECKING, Any

import trio

from shoal.errors import InvalidArgument, NotFound, ShoalError
from shoal.slots import ImageDistribution

from .http import HttpError, Request, Response
from .params import normalize_filters
from .routes import RouteTable

if TYPE_CHECKING:
    from shoal.slots import ImageRecord

    from .app import Api

_DEFAULT_PREFIXES = ("docker.io/library/", "docker.io/")

log = logging.getLogger("shoal.engine_api")


def register(routes: RouteTable, api: Api) -> None:
    """Add the image endpoints."""
    i = ImageEndpoints(api)
    routes.add("POST", "/images/create", i.create)
    routes.add("GET", "/images/json", i.list)
    routes.add("GET", "/images/get", i.save)
    routes.add("POST", "/images/load", i.load)
    routes.add("POST", "/images/prune", i.prune)
    routes.add("POST", "/auth", i.auth)
    routes.add("GET", "/distribution/{name:path}/json", i.distribution)
    routes.add("GET", "/images/{name:path}/get", i.save_one)
    routes.add("GET", "/images/{name:path}/history", i.history)
    routes.add("POST", "/images/{name:path}/push", i.push)
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
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
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

    def distribution_store(self, action: str) -> ImageDistribution:
        store = self.store
        if not isinstance(store, ImageDistribution):
            raise HttpError(501, f"{action} is not available: this engine's image store has no registry and archive support")
        return store

    async def create(self, request: Request) -> Response:
        if request.arg("fromImage"):
            return await self._pull(request)
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

    async def _pull(self, request: Request) -> Response:
        image, tag = request.arg("fromImage") or "", request.arg("tag") or ""
        if tag:
            image = f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}"
        platform_arg = request.arg("platform") or ""
        platform = _platform(platform_arg) if platform_arg else None
        credentials = _credentials(request)
        store = self.distribution_store("pulling images")
        reference = _reference(image)
        return _progress_response(lambda report: store.pull(reference, credentials, report, platform))

    async def push(self, request: Request) -> Response:
        name, tag = request.params["name"], request.arg("tag") or ""
        reference = f"{name}:{tag}" if tag else name
        credentials = _credentials(request)
        store = self.distribution_store("pushing images")
        await self.store.get(reference)  # a missing image is a plain 404, before the stream starts
        return _progress_response(lambda report: store.push(reference, credentials, report))

    async def save_one(self, request: Request) -> Response:
        return await self._save([request.params["name"]])

    async def save(self, request: Request) -> Response:
        names = request.query.get("names") or []
        if not names:
            raise InvalidArgument("query parameter 'names' is required")
        return await self._save(names)

    async def _save(self, references: list[str]) -> Response:
        path = await self.distribution_store("saving images").save(references)
        return Response(200, _stream_and_delete(path), "application/x-tar")

    async def load(self, request: Request) -> Response:
        loaded = await self.distribution_store("loading images").load(request.chunks())
        request.flag("quiet")  # validated; only progress bars are quiet-able and loading shows none
        lines = []
        for record, names in loaded:
            shown = [familiar(str(_reference(n))) for n in names] or [record.id]
            for name in shown:
                label = "Loaded image ID" if name == record.id else "Loaded image"
                lines.append(json.dumps({"stream": f"{label}: {name}\n"}).encode() + b"\r\n")
        return Response(200, b"".join(lines), "application/json")

    async def history(self, request: Request) -> Response:
        if self.api.images is None:
            raise NotFound(f"No such image: {request.params['name']}")
        return Response.json(await self.store.history(request.params["name"]))

    async def prune(self, request: Request) -> Response:
        filters = normalize_filters(request.json_arg("filters"))
        unknown = set(filters) - {"dangling"}
        if unknown:
            raise InvalidArgument(f"invalid filter {sorted(unknown)[0]!r}")
        all_unused = any(v.lower() in ("0", "false") for v in filters.get("dangling", []))
        in_use = {c["ImageID"] for c in await self.api.containers.list(all=True) if c.get("ImageID")}
        items, reclaimed = await self.distribution_store("pruning images").prune(all_unused, in_use)
        return Response.json({"ImagesDeleted": items or None, "SpaceReclaimed": reclaimed})

    async def distribution(self, request: Request) -> Response:
        info = await self.distribution_store("inspecting a registry").describe(request.params["name"], _credentials(request))
        return Response.json(info)

    async def auth(self, request: Request) -> Response:
        body = await request.json(required=True) or {}
        from shoal.plugins.images.credentials import Credentials

        server = str(body.get("serveraddress") or "docker.io")
        server = server.split("://", 1)[-1].split("/", 1)[0]
        if server in ("index.docker.io", "registry-1.docker.io"):
            server = "docker.io"
        credentials = Credentials(str(body.get("username") or ""), str(body.get("password") or ""),
                                  str(body.get("identitytoken") or ""))  # fmt: skip
        try:
            await self.distribution_store("logging in").login(server, credentials)
        except ShoalError as exc:
            raise HttpError(401, f"login to {server} failed: {exc}") from None
        return Response.json({"Status": "Login Succeeded", "IdentityToken": ""})

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


def _reference(text: str) -> str:
    from shoal.plugins.images.reference import normalise

    return normalise(text)


def _platform(text: str) -> dict[str, str]:
    from shoal.plugins.images.manifests import parse_platform

    return parse_platform(text)


def _credentials(request: Request) -> Any:
    """The ``X-Registry-Auth`` credentials, or None to use the engine's stored ones."""
    from shoal.plugins.images.credentials import from_header

    return from_header(request.headers.get("x-registry-auth"))


def _progress_response(work: Callable[[Callable[[dict[str, Any]], None]], Awaitable[Any]]) -> Response:
    """Run ``work`` while streaming the progress it reports as JSON lines; an error ends the stream."""

    async def stream() -> AsyncIterator[bytes]:
        send, receive = trio.open_memory_channel[dict[str, Any]](math.inf)

        async def run() -> None:
            with send:
                try:
                    await work(send.send_nowait)
                except ShoalError as exc:
                    send.send_nowait({"errorDetail": {"message": str(exc)}, "error": str(exc)})
                except Exception as exc:
                    log.exception("image transfer failed")
                    message = f"internal error: {type(exc).__name__}: {exc}"
                    send.send_nowait({"errorDetail": {"message": message}, "error": message})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            async with receive:
                async for message in receive:
                    yield json.dumps(message).encode() + b"\r\n"

    return Response(200, stream(), "application/json")


async def _stream_and_delete(path: Any) -> AsyncIterator[bytes]:
    try:
        async with await trio.open_file(path, "rb") as f:
            while data := await f.read(1 << 20):
                yield data
    finally:
        await trio.to_thread.run_sync(path.unlink, True)
