"""The Docker Engine API (v1.50) frontend: serves the ``containers`` slot over HTTP.

Listens on a unix socket (and optionally TCP); the ``docker`` CLI, the Docker SDKs and the
``shoal`` CLI talk to it. Other plugins add endpoints through the ``shoal_api_routes`` hook
(see ``shoal.plugins.engine_api.routes`` for the handler signature).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal import Plugin, PluginContext, hookimpl, setting


@dataclass(frozen=True)
class EngineApiConfig:
    """Settings of the Engine API frontend."""

    socket: str = setting("", "Unix socket path; empty: shoal.sock in the engine's run root.")
    socket_mode: int = setting(0o660, "Permission bits of the socket file.")
    socket_group: str = setting("", "Group (name or gid) owning the socket file; empty: leave it as created.")
    tcp: str = setting("", "Also listen on this host:port (unencrypted; empty: no TCP).")


class _EngineWatcher:
    """Learns the running engine once it is ready (``/info`` reports its plugins)."""

    def __init__(self, api: Any) -> None:
        self.api = api

    @hookimpl
    def shoal_engine_ready(self, engine: Any) -> None:
        self.api.engine = engine


async def setup(ctx: PluginContext) -> None:
    from .app import Api, build_routes
    from .server import ApiServer, serve

    api = Api(
        containers=ctx.slot("containers"),
        events=ctx.events,
        images=ctx.slot("images"),
        volumes=ctx.slot("volumes"),
        data_root=ctx.data_root,
    )
    ctx.add_hooks(_EngineWatcher(api))
    config: EngineApiConfig = ctx.config
    socket_path = config.socket or str(ctx.run_root / "shoal.sock")

    async def service(*, task_status: Any) -> None:
        # Routes are gathered when serving starts, after every plugin registered its hooks.
        server = ApiServer(build_routes(api, ctx.hook))
        await serve(
            server,
            socket_path,
            socket_mode=config.socket_mode,
            socket_group=config.socket_group,
            tcp=config.tcp,
            task_status=task_status,
        )

    ctx.add_service("engine-api", service)


plugin = Plugin(
    name="engine-api",
    summary="Docker Engine API v1.50 on a unix socket (and TCP), for docker, its SDKs and shoal.",
    requires=("containers",),
    uses=("images", "volumes", "network"),
    config=EngineApiConfig,
    setup=setup,
)
