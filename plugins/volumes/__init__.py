"""Registration glue of ``local-volumes``: named volumes as directories under the data root.
The implementation lives in ``volumes``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal import Plugin, PluginContext, setting


@dataclass(frozen=True)
class LocalVolumesConfig:
    root: str = setting("", "Directory holding the volumes; empty: the plugin's data directory.")


async def setup(ctx: PluginContext) -> Any:
    import trio

    from .volumes import LocalVolumes

    return await trio.to_thread.run_sync(LocalVolumes.open, ctx.config.root or ctx.data_dir)


plugin = Plugin(
    name="local-volumes",
    summary="Named volumes as local directories, with labels.",
    slot="volumes",
    config=LocalVolumesConfig,
    setup=setup,
)
