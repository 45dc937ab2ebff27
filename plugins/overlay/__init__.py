"""Registration glue of the ``overlay`` snapshotter: image layers unpacked once and shared
read-only through overlayfs, one writable layer per container, or private copies where
overlayfs cannot be used. The implementation lives in ``snapshotter``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from shoal import Plugin, PluginContext, setting


@dataclass(frozen=True)
class OverlayConfig:
    driver: Literal["auto", "overlay", "copy"] = setting(
        "auto", "overlay: overlayfs mounts; copy: a private copy per container; auto: overlay if a test mount works."
    )


def probe(config: OverlayConfig) -> str | None:
    """Skip when not root: unpacking layers makes device nodes and sets owners and xattrs."""
    if os.geteuid() != 0:
        return "unpacking image layers needs root"
    return None


async def setup(ctx: PluginContext) -> Any:
    import trio

    from .snapshotter import OverlaySnapshotter

    return await trio.to_thread.run_sync(OverlaySnapshotter.open, ctx.data_dir, ctx.config.driver)


plugin = Plugin(
    name="overlay",
    summary="Image layers unpacked once and shared read-only (overlayfs, or copies where it is missing).",
    slot="snapshots",
    config=OverlayConfig,
    probe=probe,
    setup=setup,
)
