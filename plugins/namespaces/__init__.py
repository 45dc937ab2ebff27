"""Registration glue of the ``namespaces`` isolation provider (containers from Linux
namespaces); the implementation lives in ``isolation`` and is imported only by ``setup``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from shoal import Plugin, PluginContext, setting
from shoal.runtime import DEFAULT_CAPABILITIES

# Docker's default capability set, re-exported for the engine (kept with the runtime types).
__all__ = ["DEFAULT_CAPABILITIES", "NamespacesConfig", "plugin"]


@dataclass(frozen=True)
class NamespacesConfig:
    state_dir: str = setting(
        "",
        "Per-container state (exit status, /etc files) and the monitor's socket; "
        "empty: namespaces/ under the run root.",
    )


def probe(config: NamespacesConfig) -> str | None:
    """Skip unless we are root on a kernel with every namespace kind and openat2."""
    if os.geteuid() != 0:
        return "needs root"
    for name in ("pid", "mnt", "uts", "ipc", "net", "cgroup", "user"):
        if not os.path.exists(f"/proc/self/ns/{name}"):
            return f"the kernel has no {name} namespaces"
    if not hasattr(os, "pidfd_open"):
        return "Python has no os.pidfd_open (Linux 5.3+ needed)"
    return None


@asynccontextmanager
async def setup(ctx: PluginContext) -> AsyncIterator[object]:
    from .isolation import NamespaceIsolation

    isolation = NamespaceIsolation(ctx.config.state_dir or ctx.run_root / "namespaces")
    async with isolation:
        yield isolation


plugin = Plugin(
    name="namespaces",
    summary="Containers from Linux namespaces, pivot_root and capabilities, with one monitor process "
    "for all of them and live restore.",
    slot="isolation",
    config=NamespacesConfig,
    setup=setup,
    probe=probe,
)
