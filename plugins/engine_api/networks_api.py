"""Network endpoints over the ``network`` slot: list, inspect, create, remove, connect,
disconnect, prune."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shoal.errors import InvalidArgument, NotFound

from .http import HttpError, Request, Response
from .params import normalize_filters
from .routes import RouteTable

if TYPE_CHECKING:
    from .app import Api


def register(routes: RouteTable, api: Api) -> None:
    """Add the network endpoints."""
    n = NetworkEndpoints(api)
    routes.add("GET", "/networks", n.list)
    routes.add("POST", "/networks/create", n.create)
    routes.add("POST", "/networks/prune", n.prune)
    routes.add("GET", "/networks/{id}", n.inspect)
    routes.add("DELETE", "/networks/{id}", n.remove)
    routes.add("POST", "/networks/{id}/connect", n.connect)
    routes.add("POST", "/networks/{id}/disconnect", n.disconnect)


class NetworkEndpoints:
    """The handlers; the provider is looked up per request (it is known once the engine is)."""

    def __init__(self, api: Api) -> None:
        self.api = api

    @property
    def provider(self) -> Any | None:
        engine = self.api.engine
        provider = getattr(self.api.containers, "network", None)
        if provider is None and engine is not None and engine.has_slot("network"):
            provider = engine.slot("network")
        return provider

    @property
    def network(self) -> Any:
        if self.provider is None:
            raise HttpError(501, "this engine has no network provider (no plugin fills the network slot)")
        return self.provider

    @staticmethod
    def _forbidden(exc: InvalidArgument) -> None:
        if type(exc).__name__ == "PredefinedNetwork":
            raise HttpError(403, str(exc)) from None
        raise exc

    async def list(self, request: Request) -> Response:
        filters = normalize_filters(request.json_arg("filters"))
        if self.provider is None:
            return Response.json([])
        return Response.json(await self.network.list_networks(filters))

    async def inspect(self, request: Request) -> Response:
        if self.provider is None:
            raise NotFound(f"network {request.params['id']} not found")
        return Response.json(await self.network.inspect_network(request.params["id"]))

    async def create(self, request: Request) -> Response:
        body = await request.json() or {}
        try:
            return Response.json(await self.network.create_network(body), 201)
        except InvalidArgument as exc:
            self._forbidden(exc)
            raise

    async def remove(self, request: Request) -> Response:
        try:
            await self.network.remove_network(request.params["id"])
        except InvalidArgument as exc:
            self._forbidden(exc)
        return Response.empty()

    async def prune(self, request: Request) -> Response:
        filters = normalize_filters(request.json_arg("filters"))
        return Response.json({"NetworksDeleted": await self.network.prune_networks(filters)})

    async def connect(self, request: Request) -> Response:
        from shoal.plugins.engine import networking

        body = await request.json() or {}
        container = body.get("Container")
        if not container or not isinstance(container, str):
            raise InvalidArgument("Container is required")
        await self.network.inspect_network(request.params["id"])
        try:
            await networking.connect(self.api.containers, request.params["id"], container, body.get("EndpointConfig") or {})
        except InvalidArgument as exc:
            self._forbidden(exc)
        return Response.empty(200)

    async def disconnect(self, request: Request) -> Response:
        from shoal.plugins.engine import networking

        body = await request.json() or {}
        container = body.get("Container")
        if not container or not isinstance(container, str):
            raise InvalidArgument("Container is required")
        await networking.disconnect(self.api.containers, request.params["id"], container, bool(body.get("Force")))
        return Response.empty(200)
