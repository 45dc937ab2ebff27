"""A plugin adding an endpoint to the Engine API through the ``shoal_api_routes`` hook."""

from __future__ import annotations

from shoal import Plugin, PluginContext, hookimpl


class Routes:
    @hookimpl
    def shoal_api_routes(self, routes) -> None:
        from shoal.plugins.engine_api.http import Response

        async def hello(request):
            return Response.json({"hello": request.params["who"], "version": request.api_version})

        routes.add("GET", "/hello/{who}", hello)


async def setup(ctx: PluginContext) -> None:
    ctx.add_hooks(Routes())


plugin = Plugin(name="extra-routes", summary="Adds GET /hello/{who}.", setup=setup)
