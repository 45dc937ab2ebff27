"""The container engine: Docker's container life cycle over the isolation, resources and
storage slots. It fills the ``containers`` slot, which the Engine API frontend serves and an
embedding program calls directly (``engine.slot("containers")``)."""

from __future__ import annotations

from shoal import Plugin, PluginContext


async def setup(ctx: PluginContext) -> object:
    from .engine import ContainerEngine

    engine = ContainerEngine(
        store=ctx.slot("store"),
        images=ctx.slot("images"),
        snapshots=ctx.slot("snapshots"),
        isolation=ctx.slot("isolation"),
        resources=ctx.slot("resources"),
        volumes=ctx.slot("volumes"),
        network=ctx.slot("network"),
        events=ctx.events,
        data_dir=ctx.data_dir,
    )
    ctx.add_service("containers", engine.run)
    return engine


plugin = Plugin(
    name="engine",
    summary="Container life cycle (create, start, stop, exec, logs, restart policies, live restore).",
    slot="containers",
    requires=("store", "images", "snapshots", "isolation", "resources"),
    uses=("volumes", "network"),
    setup=setup,
)
