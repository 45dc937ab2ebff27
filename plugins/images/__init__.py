"""Registration glue of the ``images`` store: OCI manifests, configs and content-addressed
blobs with Docker-style names, and ``import`` of root filesystems. Layers are unpacked
through the ``snapshots`` slot. The implementation lives in ``store``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal import Plugin, PluginContext, setting


@dataclass(frozen=True)
class ImagesConfig:
    compression_level: int = setting(6, "gzip level (1 fastest .. 9 smallest) of layers made by import.")


async def setup(ctx: PluginContext) -> Any:
    from shoal.errors import InvalidArgument

    from .store import LocalImageStore

    if not 1 <= ctx.config.compression_level <= 9:
        raise InvalidArgument(f"[plugins.images].compression_level must be 1..9, not {ctx.config.compression_level}")
    return await LocalImageStore.open(ctx.data_dir, ctx.slot("snapshots"), ctx.config.compression_level)


plugin = Plugin(
    name="images",
    summary="Local image store: OCI blobs, manifests and configs, Docker names, rootfs import.",
    slot="images",
    requires=("snapshots",),
    config=ImagesConfig,
    setup=setup,
)
