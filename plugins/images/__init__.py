"""Registration glue of the ``images`` store: OCI manifests, configs and content-addressed
blobs with Docker-style names, ``import`` of root filesystems, pull and push over the OCI
Distribution protocol, and ``docker save``/``load`` archives. Layers are unpacked through
the ``snapshots`` slot. The implementation lives in ``store``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal import Plugin, PluginContext, setting


@dataclass(frozen=True)
class ImagesConfig:
    compression_level: int = setting(6, "gzip level (1 fastest .. 9 smallest) of layers made by import.")
    insecure_registries: list[str] = setting(
        factory=list, doc="Registries (host[:port] or CIDR) reached over plain HTTP; loopback ones always are."
    )
    certs_dir: str = setting("/etc/docker/certs.d", "Per-registry CA (*.crt) and client certificate files: DIR/<host[:port]>/.")
    docker_config: str = setting("", "Docker config.json with stored registry credentials (empty: ~/.docker/config.json).")
    max_concurrent_downloads: int = setting(3, "Layers downloaded at once by one pull.")
    max_concurrent_uploads: int = setting(5, "Layers uploaded at once by one push.")


async def setup(ctx: PluginContext) -> Any:
    from pathlib import Path

    from shoal.errors import InvalidArgument

    from .distribution import TransportOptions
    from .store import LocalImageStore

    config: ImagesConfig = ctx.config
    if not 1 <= config.compression_level <= 9:
        raise InvalidArgument(f"[plugins.images].compression_level must be 1..9, not {config.compression_level}")
    if config.max_concurrent_downloads < 1 or config.max_concurrent_uploads < 1:
        raise InvalidArgument("[plugins.images].max_concurrent_downloads and max_concurrent_uploads must be at least 1")
    return await LocalImageStore.open(
        ctx.data_dir, ctx.slot("snapshots"), config.compression_level,
        transport=TransportOptions(insecure_registries=tuple(config.insecure_registries), certs_dir=config.certs_dir),
        docker_config=Path(config.docker_config) if config.docker_config else None,
        concurrency=(config.max_concurrent_downloads, config.max_concurrent_uploads),
    )  # fmt: skip


plugin = Plugin(
    name="images",
    summary="Local image store: OCI blobs and manifests, Docker names, import, pull/push, save/load.",
    slot="images",
    requires=("snapshots",),
    config=ImagesConfig,
    setup=setup,
)
