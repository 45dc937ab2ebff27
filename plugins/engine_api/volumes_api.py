"""Volume endpoints over the ``volumes`` slot: list, create, inspect, remove."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shoal.errors import Conflict, InvalidArgument, NotFound

from .http import HttpError, Request, Response
from .params import normalize_filters
from .routes import RouteTable

if TYPE_CHECKING:
    from shoal.slots import VolumeRecord

    from .app import Api


def register(routes: RouteTable, api: Api) -> None:
    """Add the volume endpoints."""
    v = VolumeEndpoints(api)
    routes.add("GET", "/volumes", v.list)
    routes.add("POST", "/volumes/create", v.create)
    routes.add("GET", "/volumes/{name}", v.inspect)
    routes.add("DELETE", "/volumes/{name}", v.remove)


def volume_json(volume: VolumeRecord) -> dict[str, Any]:
    """Docker's ``Volume`` object."""
    return {
        "Name": volume.name,
        "Driver": volume.driver,
        "Mountpoint": volume.mountpoint,
        "CreatedAt": volume.created,
        "Labels": dict(volume.labels),
        "Scope": "local",
        "Options": dict(volume.options),
    }


class VolumeEndpoints:
    """The handlers."""

    def __init__(self, api: Api) -> None:
        self.api = api

    @property
    def store(self) -> Any:
        if self.api.volumes is None:
            raise HttpError(501, "this engine has no volume store (no plugin fills the volumes slot)")
        return self.api.volumes

    async def list(self, request: Request) -> Response:
        filters = normalize_filters(request.json_arg("filters"))
        unknown = set(filters) - {"name", "label", "driver"}
        if unknown:
            raise InvalidArgument(f"invalid filter {sorted(unknown)[0]!r}")
        stored = await self.store.list() if self.api.volumes is not None else []  # no store: none
        volumes = [volume_json(v) for v in stored]
        for name in filters.get("name", []):
            volumes = [v for v in volumes if name in v["Name"]]
        for driver in filters.get("driver", []):
            volumes = [v for v in volumes if v["Driver"] == driver]
        for label in filters.get("label", []):
            key, sep, value = label.partition("=")
            volumes = [v for v in volumes if key in v["Labels"] and (not sep or v["Labels"][key] == value)]
        return Response.json({"Volumes": volumes, "Warnings": []})

    async def create(self, request: Request) -> Response:
        body = await request.json() or {}
        driver = body.get("Driver") or "local"
        if driver != "local":
            raise InvalidArgument(f"volume driver {driver!r} is not available; only 'local' is")
        labels, options = body.get("Labels") or {}, body.get("DriverOpts") or {}
        if not isinstance(labels, dict) or not isinstance(options, dict):
            raise InvalidArgument("Labels and DriverOpts must be JSON objects of strings")
        volume = await self.store.create(body.get("Name") or "", labels, options)
        return Response.json(volume_json(volume), 201)

    async def inspect(self, request: Request) -> Response:
        if self.api.volumes is None:
            raise NotFound(f"get {request.params['name']}: no such volume")
        return Response.json(volume_json(await self.store.get(request.params["name"])))

    async def remove(self, request: Request) -> Response:
        name = request.params["name"]
        if self.api.volumes is None:
            raise NotFound(f"get {name}: no such volume")
        users = [
            c["Id"]
            for c in await self.api.containers.list(all=True)
            if any(m.get("Type") == "volume" and m.get("Name") == name for m in c.get("Mounts") or [])
        ]
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        try:
            await self.store.remove(name)
        except NotFound:
            if not request.flag("force"):
                raise
        return Response.empty()
