"""Control groups for containers: limits, pause, stats and OOM kills on cgroup v1, v2 or hybrid hosts."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from shoal import Plugin, PluginContext, setting


@dataclass(frozen=True)
class CgroupsConfig:
    driver: Literal["auto", "v1", "v2"] = setting(
        "auto", "cgroup driver: auto (v1 on v1 and hybrid hosts, v2 on pure v2 hosts), v1 or v2."
    )
    parent: str = setting("shoal", "Group (relative to each hierarchy's root) under which every container gets one.")


def probe(config: CgroupsConfig) -> str | None:
    """Skip on hosts where the configured driver has no hierarchy, or when not root."""
    from .layout import read_layout

    if os.geteuid() != 0:
        return "managing cgroups needs root"
    layout = read_layout()
    if config.driver == "v2" and layout.v2 is None:
        return "driver v2 chosen but no cgroup2 hierarchy is mounted"
    if config.driver == "v1" and not layout.v1:
        return "driver v1 chosen but no cgroup v1 controller is mounted"
    if layout.kind == "none":
        return "no cgroup hierarchy is mounted"
    return None


@asynccontextmanager
async def setup(ctx: PluginContext) -> AsyncIterator[Any]:
    from .resources import CgroupResources

    resources = CgroupResources.open(driver=ctx.config.driver, parent=ctx.config.parent)
    try:
        yield resources
    finally:
        # Left in place while containers (live restore) still have groups in it.
        resources.driver.remove_parent()


plugin = Plugin(
    name="cgroups",
    summary="Container control groups (cgroup v1, v2 and hybrid): limits, pause, stats, OOM kills.",
    slot="resources",
    config=CgroupsConfig,
    probe=probe,
    setup=setup,
)
