"""Registration glue of the ``registry`` plugin: an OCI Distribution (v1.1) registry served
over HTTP or HTTPS, with filesystem storage and optional htpasswd Basic auth. Run it with
``shoald --config conf/registry.toml``. The implementation lives in ``server``/``storage``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal import Plugin, PluginContext, setting


@dataclass(frozen=True)
class RegistryConfig:
    address: str = setting("127.0.0.1:5000", "host:port to serve the registry on (port 0: any free port).")
    root: str = setting("", "Storage directory (empty: the plugin's directory under the data root).")
    tls_cert: str = setting("", "PEM certificate chain; with tls_key, serve HTTPS instead of plain HTTP.")
    tls_key: str = setting("", "PEM private key of tls_cert.")
    htpasswd: str = setting("", "htpasswd file (bcrypt or {SHA} entries); empty: no authentication.")
    realm: str = setting("shoal-registry", "Realm named in the Basic authentication challenge.")
    delete_enabled: bool = setting(True, "Allow DELETE of manifests and blobs.")


async def setup(ctx: PluginContext) -> None:
    from pathlib import Path

    import trio

    from shoal.errors import InvalidArgument

    from .service import build_server, serve, tls_context

    config: RegistryConfig = ctx.config
    if bool(config.tls_cert) != bool(config.tls_key):
        raise InvalidArgument("[plugins.registry]: tls_cert and tls_key go together")
    root = Path(config.root) if config.root else ctx.data_dir
    root.mkdir(parents=True, exist_ok=True)
    server = await trio.to_thread.run_sync(build_server, root, config.htpasswd, config.realm, config.delete_enabled)
    context = tls_context(config.tls_cert, config.tls_key) if config.tls_cert else None

    async def run(*, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(server, config.address, context, task_status=task_status)

    ctx.add_service("registry", run)


plugin = Plugin(
    name="registry",
    summary="OCI Distribution registry server (pull/push by docker, skopeo...), filesystem storage.",
    config=RegistryConfig,
    setup=setup,
)
